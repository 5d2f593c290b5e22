#!/usr/bin/env bash
# The README's "Deploying on a board" steps, followed as a technician would on a fresh
# board, on this machine and without touching it: inside a mount namespace whose /etc,
# /opt, /var and /usr/local are overlays on a scratch directory (so the user, the config
# and the install vanish with it), and a network namespace with only a loopback interface.
# sha256sum -c, tar, `sudo ./install.sh` (the real thing, not --root), the technician's
# edit of the config, then the gateway started as the unit starts it (its ExecStart, as
# the steppelink user with its groups: systemd does not run in this container) with
# mosquitto and the bundle's console in the namespace, a press from `steppelink sim
# terminal` on a pseudo-terminal owned by dialout, `steppelink doctor`, `steppelink status`
# and `install.sh --uninstall`.
#
# Usage: sudo scripts/board-trial.sh build/steppelink-<version>-linux-x64.tar.gz
# Needs: root (unshare), socat, mosquitto, util-linux (setpriv).
set -euo pipefail
bundle=$(readlink -f "${1:?usage: scripts/board-trial.sh BUNDLE.tar.gz}")
[ -f "$bundle.sha256" ] || { echo "board-trial: no $bundle.sha256 beside the bundle" >&2; exit 1; }
name=$(basename "$bundle" .tar.gz)
T=$(mktemp -d /tmp/steppelink-trial-XXXXXX)
trap 'kill "$SOCAT" 2>/dev/null || true; rm -rf "$T"' EXIT
# The gateway runs as the steppelink user: it must reach the pseudo-terminal links in here.
chmod 0755 "$T"
mkdir -p "$T/home"
cp "$bundle" "$bundle.sha256" "$T/home/"
printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' >"$T/mq.conf"
socat pty,raw,echo=0,link="$T/pa" pty,raw,echo=0,link="$T/pb" &
SOCAT=$!
for _ in $(seq 50); do [ -e "$T/pa" ] && [ -e "$T/pb" ] && break; sleep 0.1; done
export T NAME="$name" PTY_A="$T/pa" PTY_B="$T/pb"
unshare -m -n bash -s <<'INNER'
set -eo pipefail
# Whatever fails, nothing started here outlives the trial.
cleanup() { kill ${GW:-} ${CON:-} ${MQ:-} 2>/dev/null || true; }
trap cleanup EXIT
for d in etc opt var usr-local; do mkdir -p $T/$d/upper $T/$d/work; done
mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/etc/upper,workdir=$T/etc/work /etc
mount -t overlay overlay -o lowerdir=/opt,upperdir=$T/opt/upper,workdir=$T/opt/work /opt
mount -t overlay overlay -o lowerdir=/var,upperdir=$T/var/upper,workdir=$T/var/work /var
mount -t overlay overlay -o lowerdir=/usr/local,upperdir=$T/usr-local/upper,workdir=$T/usr-local/work /usr/local
ip link set lo up
cd $T/home
echo "\$ sha256sum -c $NAME.tar.gz.sha256"
sha256sum -c "$NAME.tar.gz.sha256"
tar -xzf "$NAME.tar.gz"
echo "\$ sudo ./$NAME/install.sh"
./"$NAME"/install.sh
echo "--- installed: $(readlink /opt/steppelink/current); $(ls -l /usr/local/bin/steppelink | awk '{print $9,$10,$11}'); $(id steppelink)"
echo '$ steppelink --version'; steppelink --version
# The technician's edit of the config (the values the platform gave), and the platform key.
steppelink keygen --out $T/keys >/dev/null
cp $T/keys/platform.pub /etc/steppelink/platform.pub
sed -i -e 's|^id = "CHANGE-ME[^"]*"|id = "xlg-trial-0001"|' -e 's|^brokers = \["CHANGE-ME[^"]*"\]|brokers = ["mqtt://127.0.0.1:1883"]|' \
  -e 's|^username = "CHANGE-ME[^"]*"|username = "xlg-trial-0001"|' -e "s|^path = \"/dev/ttyUSB0\"|path = \"$PTY_A\"|" /etc/steppelink/gateway.toml
chgrp dialout "$(readlink -f $PTY_A)"; chmod 660 "$(readlink -f $PTY_A)"
grep -n "CHANGE-ME" /etc/steppelink/gateway.toml | grep -v "^[0-9]*:#" || echo "--- no CHANGE-ME left"
/usr/sbin/mosquitto -c $T/mq.conf & MQ=$!
sleep 1
steppelink console --broker mqtt://127.0.0.1:1883 --ack auto --dispatch-after 1 --resolve-after 2 --signing-key $T/keys/platform.key --json > $T/console.log 2>&1 &
CON=$!
# The service, as systemd would run it (no systemd in this container): its user, its ExecStart.
EXEC=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/steppelink-gateway.service)
echo "--- starting as the unit does, user steppelink: $EXEC"
setpriv --reuid steppelink --regid steppelink --init-groups $EXEC > $T/gateway.log 2>&1 &
GW=$!
sleep 4
echo '$ steppelink sim terminal ... --press emergency --until resolved'
steppelink sim terminal --serial "$PTY_B" --id SL-T-0001 --press emergency --until resolved --timeout 60 | tail -4
echo '$ sudo steppelink doctor'
DOCTOR=0
steppelink doctor || DOCTOR=$?
echo '$ steppelink status'
steppelink status | head -12 || true
kill $GW $CON $MQ 2>/dev/null; wait 2>/dev/null || true
echo '$ sudo /opt/steppelink/current/install.sh --uninstall'
/opt/steppelink/current/install.sh --uninstall | tail -4
ls /etc/steppelink /var/lib/steppelink
exit "$DOCTOR"
INNER
