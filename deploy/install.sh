#!/bin/sh
# Steppelink's installer for the gateway board (a Raspberry Pi class board in a center
# household). It ships at the top of each release bundle, steppelink-<version>-linux-<arch>/,
# and is also kept in every installed release (/opt/steppelink/current/install.sh), so that
# --rollback and --uninstall work without the bundle at hand. `./install.sh --help` says how.
#
# What it installs:
#   /opt/steppelink/releases/<version>-<arch>/   a copy of the bundle
#   /opt/steppelink/current, previous            links to the release running and the one before
#   /usr/local/bin/steppelink                    -> /opt/steppelink/current/bin/steppelink
#   /etc/steppelink/gateway.toml                 the config template, only if there is none
#   /var/lib/steppelink                          the gateway's store (never removed but by --purge)
#   /etc/systemd/system/steppelink-gateway.service, the journald drop-in, a udev example
#   the system user steppelink, in the dialout group (serial ports)
#
# Written for a person at the board's console with a terminal that may be slow and a link
# that may be gone: it needs nothing from the network, checks everything it can before it
# changes anything, and every failure says what was wrong and what to do.
#
# POSIX sh (dash on Raspberry Pi OS and Debian): no bashisms, no `local`.
set -eu

PROG=install.sh
UNIT=steppelink-gateway
USER_NAME=steppelink
# glibc 2.34: the oldest the bundle's Node.js runtime runs on (Debian 12, Ubuntu 22.04).
GLIBC_MIN_MAJOR=2
GLIBC_MIN_MINOR=34

# For tests only: SYSTEMCTL and JOURNALCTL name the programs called in place of systemctl
# and journalctl (a fake that records its arguments). When SYSTEMCTL is set, it is called
# even with --root, so a test can act on a temporary tree and still see the service steps;
# without it, --root calls no systemctl at all. STEPPELINK_SETTLE_SECONDS is how long to
# wait before checking a second time that a started gateway stayed up (0 in tests).
SYSTEMCTL_GIVEN=${SYSTEMCTL:-}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
JOURNALCTL=${JOURNALCTL:-journalctl}
SETTLE=${STEPPELINK_SETTLE_SECONDS:-5}
ARGS_TEXT="$*"

# ------------------------------------------------------------------ messages

# Messages never fail the install: over SSH on a weak link the terminal may be gone (see
# the HUP trap below), and a write to it must not stop an upgrade halfway.
say() { printf '%s\n' "$*" 2>/dev/null || true; }
note() { printf '  %s\n' "$*" 2>/dev/null || true; }
warn() { printf '%s: WARNING: %s\n' "$PROG" "$*" >&2 2>/dev/null || true; }
# Every failure: what was wrong, then what to do; exit 1.
die() {
  printf '%s: FAILED: %s\n' "$PROG" "$1" >&2
  shift
  for line in "$@"; do printf '  what to do: %s\n' "$line" >&2; done
  exit 1
}
# A message nobody may miss: the store was put back to an older copy.
loud() {
  printf '\n%s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
  for line in "$@"; do printf '!!! %s\n' "$line" >&2; done
  printf '%s\n\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
}

usage() {
  cat <<EOF
Usage: sudo ./install.sh [--no-start] [--no-selftest] [--root DIR]
       sudo ./install.sh --rollback [--no-start] [--root DIR]
       sudo ./install.sh --uninstall [--purge] [--root DIR]

Installs the Steppelink gateway from this unpacked bundle, or upgrades the one installed
(the release before is kept for --rollback). Run it from the bundle's directory, as root.

  (no option)    install, or upgrade when another release is current; the same release
                 again reinstalls it in place (config and data are kept)
  --rollback     go back to the release before (/opt/steppelink/previous), and restart
  --uninstall    remove the program, the service and the system files; keep the config
                 (/etc/steppelink), the data (/var/lib/steppelink) and the user
  --purge        with --uninstall: remove those too (every stored event is lost)
  --no-start     install or upgrade, but do not start the gateway
  --root DIR     act on the system tree mounted at DIR (an SD card before its first boot)
                 instead of /: no service is started, the unit is enabled by its link
  --no-selftest  do not run the new release's self-test (with --root, preparing a card
                 for a board of another architecture): nothing checks that it runs
  --help         this text

After a first install: edit /etc/steppelink/gateway.toml, then
  sudo steppelink doctor && sudo systemctl start steppelink-gateway
EOF
}

# ------------------------------------------------------------------ arguments

MODE=install
PURGE=no
START=yes
SELFTEST=yes
ROOT=
while [ $# -gt 0 ]; do
  case $1 in
    --help | -h) usage; exit 0 ;;
    --rollback) MODE=rollback ;;
    --uninstall) MODE=uninstall ;;
    --purge) PURGE=yes ;;
    --no-start) START=no ;;
    --no-selftest) SELFTEST=no ;;
    --root)
      [ $# -ge 2 ] || { usage >&2; die "--root needs a directory" "give the directory where the card's root partition is mounted, e.g. --root /mnt/sd"; }
      ROOT=$2
      shift
      ;;
    --root=*) ROOT=${1#--root=} ;;
    *) usage >&2; printf '%s: unknown option %s\n' "$PROG" "$1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$PURGE" = yes ] && [ "$MODE" != uninstall ]; then
  printf '%s: --purge goes with --uninstall\n' "$PROG" >&2
  exit 2
fi

if [ -n "$ROOT" ]; then
  case $ROOT in
    *[[:space:]]*) die "--root $ROOT has a space in it, which the user tools (useradd --prefix) do not take" "mount the card on a path without spaces, e.g. /mnt/sd" ;;
  esac
  [ -d "$ROOT" ] || die "--root $ROOT is not a directory" "mount the card's root partition and give its mount point"
  ROOT=$(cd "$ROOT" && pwd -P)
  [ "$ROOT" != / ] || ROOT=
fi

# Every path on the target system goes through these: with --root they are inside DIR.
OPT=$ROOT/opt/steppelink
RELEASES=$OPT/releases
ETC=$ROOT/etc/steppelink
CONFIG=$ETC/gateway.toml
UNIT_FILE=$ROOT/etc/systemd/system/$UNIT.service
WANTS_LINK=$ROOT/etc/systemd/system/multi-user.target.wants/$UNIT.service
JOURNALD_DROPIN=$ROOT/etc/systemd/journald.conf.d/steppelink.conf
UDEV_EXAMPLE=$ROOT/etc/udev/rules.d/99-steppelink-terminal.rules.example
BIN_LINK=$ROOT/usr/local/bin/steppelink
DEFAULT_DATA=/var/lib/steppelink

# Whether systemctl and journalctl are called: not under --root (the tree is not the running
# system) unless a test gave SYSTEMCTL, and not where systemd is not running (a chroot, a
# container): then the unit is enabled by making its link, as `systemctl enable` would.
NO_SYSTEMD=no
if [ -n "$SYSTEMCTL_GIVEN" ]; then
  LIVE=yes
elif [ -n "$ROOT" ]; then
  LIVE=no
elif [ -d /run/systemd/system ]; then
  LIVE=yes
else
  LIVE=no
  NO_SYSTEMD=yes
fi

# ------------------------------------------------------------------ small helpers

# systemctl on the live system; under --root, only said.
sysctl() {
  if [ "$LIVE" = yes ]; then
    "$SYSTEMCTL" "$@"
  else
    note "(not running on this system: systemctl $*)"
  fi
}

service_active() { [ "$LIVE" = yes ] && "$SYSTEMCTL" is-active --quiet "$UNIT" 2>/dev/null; }

# The release a link (current, previous) points to: its directory name, or nothing.
release_of() {
  if [ -L "$OPT/$1" ]; then basename "$(readlink "$OPT/$1")"; fi
}

# Points $OPT/NAME at releases/RELEASE in one rename: a link made under a temporary name,
# then moved over the old one, so that a power cut leaves either the old link or the new,
# never none (a board without a current release would not start its gateway at boot).
switch_link() {
  ln -sfn "releases/$2" "$OPT/.$1.new"
  mv -T "$OPT/.$1.new" "$OPT/$1"
}

# The config's `data` (the store's directory), or the default; with --root, inside DIR.
# A technician may have put the store on a partition of its own (README, "As a service").
data_dir() {
  d=
  if [ -f "$CONFIG" ]; then
    # The top-level `data = "..."`, before the first [section].
    d=$(awk '/^[[:space:]]*\[/ { exit } /^[[:space:]]*data[[:space:]]*=/ { sub(/^[^"]*"/, ""); sub(/".*$/, ""); print; exit }' "$CONFIG")
  fi
  case $d in
    /*) printf '%s%s\n' "$ROOT" "$d" ;;
    *) printf '%s%s\n' "$ROOT" "$DEFAULT_DATA" ;;
  esac
}

# Whether the config still has a CHANGE-ME placeholder of the template (deploy/gateway.toml)
# on a line that is not a comment: then nobody has configured this board yet.
config_is_template() {
  [ -f "$CONFIG" ] && grep -q '^[^#]*CHANGE-ME' "$CONFIG"
}

# The store files: the database and, if there, its write-ahead log and shared-memory index
# (a copy without the -wal file loses what was committed but not yet checkpointed).
STORE_FILES='gateway.db gateway.db-wal gateway.db-shm'

# Copies the store files of directory $1 into directory $2 (made), owner and mode kept.
copy_store() {
  mkdir -p "$2"
  for f in $STORE_FILES; do
    if [ -e "$1/$f" ]; then cp -p "$1/$f" "$2/$f"; fi
  done
}

# Runs a release's self-test: `bin/steppelink selftest [--data DIR]`. Its exit status is the
# contract with the bundle: 0 it runs here, 3 the store in DIR was written by a newer store
# layout than this release can open (STORE_NEWER), anything else it cannot run here.
# Bounded in time: a runtime that hangs must not hang the install.
selftest() {
  st_rc=0
  if command -v timeout >/dev/null 2>&1; then
    timeout 300 "$@" || st_rc=$?
  else
    "$@" || st_rc=$?
  fi
  return "$st_rc"
}

# The self-test of release $1 on the store in directory $2; its exit status in ST_RC.
# It runs as root: if SQLite makes the store's -wal or -shm file while it reads, that file
# is root's, and the gateway (user steppelink) could no longer open its own store. They are
# given back to the store's owner.
selftest_store() {
  ST_RC=0
  selftest "$1/bin/steppelink" selftest --data "$2" || ST_RC=$?
  ss_owner=$(stat -c '%u:%g' "$2/gateway.db")
  for f in gateway.db-wal gateway.db-shm; do
    if [ -e "$2/$f" ]; then chown "$ss_owner" "$2/$f"; fi
  done
}

# The system user, its group, and the dialout group. With --root, shadow's tools edit
# DIR/etc/{passwd,group,shadow,gshadow} (--prefix: "prepare a target tree").
PREFIX_ARGS=
[ -z "$ROOT" ] || PREFIX_ARGS="--prefix $ROOT"

user_entry() { awk -F: -v u="$USER_NAME" '$1 == u' "$ROOT/etc/passwd"; }
group_has_member() { awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) found = 1 } END { exit !found }' "$ROOT/etc/group"; }
group_exists() { awk -F: -v g="$1" '$1 == g { found = 1 } END { exit !found }' "$ROOT/etc/group"; }

ensure_user() {
  if ! group_exists dialout; then
    # shellcheck disable=SC2086 # PREFIX_ARGS is two words or none
    groupadd $PREFIX_ARGS --system dialout
    note "made the group dialout (serial ports belong to it)"
  fi
  if [ -z "$(user_entry)" ]; then
    shell=/usr/sbin/nologin
    [ -x "$ROOT$shell" ] || shell=/sbin/nologin
    [ -x "$ROOT$shell" ] || shell=/bin/false
    # A system account that cannot log in; home is the data directory, made below (and by
    # the unit's StateDirectory=), not by useradd.
    # shellcheck disable=SC2086
    useradd $PREFIX_ARGS --system --user-group --no-create-home --home-dir "$DEFAULT_DATA" \
      --shell "$shell" --groups dialout --comment 'Steppelink gateway' "$USER_NAME" ||
      die "could not make the system user $USER_NAME (useradd's message above)" "make it by hand: useradd --system --user-group --no-create-home --home-dir $DEFAULT_DATA --shell /usr/sbin/nologin --groups dialout $USER_NAME; then run this again"
    note "made the system user $USER_NAME (no login), in the group dialout"
  elif ! group_has_member dialout "$USER_NAME"; then
    # shellcheck disable=SC2086
    usermod $PREFIX_ARGS -a -G dialout "$USER_NAME" || die "could not add $USER_NAME to the group dialout (usermod's message above)" "by hand: usermod -a -G dialout $USER_NAME; then run this again"
    note "added the user $USER_NAME to the group dialout (serial ports)"
  fi
  # Numbers, not names, for chown: with --root the names exist in DIR/etc, not here.
  USER_UID=$(user_entry | cut -d: -f3)
  USER_GID=$(user_entry | cut -d: -f4)
}

# The unit from a release's deploy/, at every install and rollback: it may differ between
# releases (a flag the older runtime does not know), so it goes with the release.
install_unit() {
  mkdir -p "$(dirname "$UNIT_FILE")"
  if ! cmp -s "$1/deploy/systemd/$UNIT.service" "$UNIT_FILE"; then
    cp "$1/deploy/systemd/$UNIT.service" "$UNIT_FILE.new"
    chmod 0644 "$UNIT_FILE.new"
    mv -f "$UNIT_FILE.new" "$UNIT_FILE"
  fi
}

# The gateway started and still up after STEPPELINK_SETTLE_SECONDS. `systemctl start` waits
# for READY=1 (Type=notify: the store opened and migrated, the port and uplink started);
# a gateway that dies just after is in "activating (auto-restart)" for RestartSec=5, so a
# second look a few seconds later sees it.
start_and_check() {
  if ! "$SYSTEMCTL" start "$UNIT"; then return 1; fi
  "$SYSTEMCTL" is-active --quiet "$UNIT" || return 1
  if [ "$SETTLE" != 0 ]; then sleep "$SETTLE"; fi
  "$SYSTEMCTL" is-active --quiet "$UNIT" || return 1
}

journal_tail() {
  say "The gateway's last log lines (journalctl -u $UNIT -n 30):" >&2
  "$JOURNALCTL" -u "$UNIT" -n 30 --no-pager >&2 || true
}

# Switches current back to TARGET (previous becomes FROM), with the store a TARGET can
# open, then starts it unless told not to. Used by --rollback and after a failed upgrade.
# Sets RB_RESULT: up, or not-started, or down (started, and did not stay up). It is not
# called as an `if` condition: there `set -e` would not stop it at a failed step.
roll_back_to() {
  rb_target=$1
  rb_from=$2
  rb_data=$(data_dir)
  RB_ASIDE=
  [ -d "$RELEASES/$rb_target" ] || die "the release $rb_target to go back to is not in $RELEASES" \
    "install it again from its bundle: sudo ./install.sh in steppelink-${rb_target%-*}-linux-${rb_target##*-}/"
  if [ "$LIVE" = yes ]; then
    STOPPED=yes
    "$SYSTEMCTL" stop "$UNIT" || true
  fi

  # The store: the newer release may have migrated it to a layout the older one cannot open
  # (its self-test says so with exit status 3). Then the copy taken before the upgrade goes
  # back, and the migrated store is kept aside: what the newer release stored since the
  # upgrade is only there.
  if [ -e "$rb_data/gateway.db" ]; then
    selftest_store "$RELEASES/$rb_target" "$rb_data"
    rb_rc=$ST_RC
    if [ "$rb_rc" = 3 ]; then
      rb_copy=$rb_data/pre-upgrade/$rb_target
      [ -e "$rb_copy/gateway.db" ] || die "$rb_target cannot open the store in $rb_data (its layout is newer), and there is no copy of the store from before the upgrade ($rb_copy)" \
        "stay on $rb_from (still current): sudo systemctl start $UNIT" \
        "or install a release that can open this store (one made after $rb_from)"
      rb_aside=$rb_data/failed-upgrade-$rb_from
      [ ! -e "$rb_aside" ] || rb_aside=$rb_aside-$(date +%Y%m%dT%H%M%S)
      mkdir -p "$rb_aside"
      for f in $STORE_FILES; do
        if [ -e "$rb_data/$f" ]; then mv "$rb_data/$f" "$rb_aside/$f"; fi
      done
      copy_store "$rb_copy" "$rb_data"
      RB_ASIDE=$rb_aside
      loud "The store was put back to the copy taken before the upgrade to $rb_from:" \
        "$rb_from had changed it to a layout that $rb_target cannot open." \
        "EVENTS STORED BY $rb_from SINCE THE UPGRADE ARE NOT IN THE STORE NOW." \
        "They are kept in $rb_aside (do not delete it)." \
        "Alarms among them may not have reached the platform: call the 110 platform by" \
        "phone and ask which alarms from this gateway it has since the upgrade."
    elif [ "$rb_rc" != 0 ]; then
      warn "the self-test of $rb_target failed (exit status $rb_rc) on the store in $rb_data; going back to it all the same, since it ran before"
    fi
  fi

  switch_link current "$rb_target"
  switch_link previous "$rb_from"
  install_unit "$RELEASES/$rb_target"
  sysctl daemon-reload
  say "current is now $rb_target (previous: $rb_from)."
  RB_RESULT=not-started
  if [ "$START" = no ] || [ "$LIVE" = no ]; then
    say "The gateway was not started (--no-start, or not the running system)."
  elif config_is_template; then
    say "The gateway was not started: $CONFIG still has CHANGE-ME values."
  else
    STOPPED=no
    RB_RESULT=down
    if start_and_check; then
      RB_RESULT=up
      say "The gateway runs $rb_target again."
    fi
  fi
}

must_be_root() {
  [ "$(id -u)" = 0 ] || die "this must run as root (it installs a system service and a system user)" "run it again with sudo: sudo $0 $ARGS_TEXT"
  [ "$NO_SYSTEMD" = no ] || warn "systemd is not running here (a chroot or a container?): the service is set up but not started; use --root DIR to prepare a card from outside it"
}

# On a failure after the gateway was stopped for a switch, start it again (whichever release
# is current then): an emergency line must not stay down because an install went wrong.
# On any exit, the copy of a release that was not put in place is removed.
STAGE=
STOPPED=no
cleanup() {
  cl_rc=$?
  if [ -n "$STAGE" ] && [ -d "$STAGE" ]; then rm -rf "$STAGE"; fi
  rm -f "$OPT/.current.new" "$OPT/.previous.new"
  # A first install that failed early leaves no empty directories behind.
  rmdir "$RELEASES" "$OPT" 2>/dev/null || true
  if [ "$cl_rc" != 0 ] && [ "$STOPPED" = yes ] && [ "$LIVE" = yes ] && ! config_is_template; then
    warn "starting the gateway again after the failure (release $(release_of current))"
    "$SYSTEMCTL" start "$UNIT" || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A dropped SSH session (the board's uplink is a weak cellular link) must not stop an
# install or an upgrade halfway, the gateway stopped: carry on without the terminal.
trap '' HUP

# ------------------------------------------------------------------ a read-only root
# Raspberry Pi OS's overlay file system (raspi-config, Performance Options, Overlay File
# System) keeps every write to / in RAM. What this script writes there (/opt, /etc, the
# unit) would be gone at the next reboot: the board would come back with the release
# before, or none, over a store the new release may already have migrated. So install,
# upgrade and roll back with the overlay off (README.md, "A read-only root").
# STEPPELINK_ALLOW_OVERLAY_ROOT=yes is for an overlay whose upper layer is on disk.
if [ -z "$ROOT" ] && [ "${STEPPELINK_ALLOW_OVERLAY_ROOT:-no}" != yes ]; then
  rootfs=$(findmnt -n -o FSTYPE / 2>/dev/null) || rootfs=$(awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts 2>/dev/null) || rootfs=
  if [ "$rootfs" = overlay ]; then
    die "the root file system is an overlay (a read-only root): what this script installs would vanish at the next reboot; nothing was changed" \
      "turn the overlay off, reboot, run this again, then turn it on again: sudo raspi-config nonint disable_overlayfs && sudo reboot; ...; sudo raspi-config nonint enable_overlayfs && sudo reboot" \
      "the store must be on a partition of its own that stays writable (README.md, \"A read-only root\"); steppelink doctor checks it"
  fi
fi

# ------------------------------------------------------------------ --uninstall

if [ "$MODE" = uninstall ]; then
  must_be_root
  data=$(data_dir)
  say "Removing Steppelink${ROOT:+ from $ROOT}."
  if [ "$LIVE" = yes ]; then
    "$SYSTEMCTL" stop "$UNIT" 2>/dev/null || true
    "$SYSTEMCTL" disable "$UNIT" 2>/dev/null || true
  fi
  rm -f "$WANTS_LINK" "$UNIT_FILE"
  sysctl daemon-reload
  if [ -e "$JOURNALD_DROPIN" ]; then
    rm -f "$JOURNALD_DROPIN"
    # Back to the board's usual log storage at once rather than at the next boot.
    if [ "$LIVE" = yes ]; then "$SYSTEMCTL" restart systemd-journald || warn "could not restart systemd-journald; the log stays in RAM until the next boot"; fi
  fi
  rm -f "$UDEV_EXAMPLE"
  # Only our link: a steppelink there that is something else (npm's) is not ours to remove.
  if [ -L "$BIN_LINK" ] && [ "$(readlink "$BIN_LINK")" = /opt/steppelink/current/bin/steppelink ]; then rm -f "$BIN_LINK"; fi
  rm -rf "$OPT"
  say "Removed the service, the program (/opt/steppelink) and the system files."
  if [ "$PURGE" = no ]; then
    say "Kept, for a later install:"
    note "the config: ${ROOT}/etc/steppelink (gateway.toml, gateway.env)"
    note "the data, with every stored event: $data"
    note "the user $USER_NAME"
    say "To remove them too: sudo ./install.sh --uninstall --purge (from any Steppelink bundle)"
    exit 0
  fi
  rm -rf "$ETC"
  if [ "$data" = "$ROOT$DEFAULT_DATA" ]; then
    rm -rf "$data"
  else
    # A store the technician put elsewhere may share its directory with other things.
    say "Not removed: the store in $data (set in the config): remove it yourself if it is only Steppelink's."
  fi
  if [ -n "$(user_entry)" ]; then
    # shellcheck disable=SC2086
    userdel $PREFIX_ARGS "$USER_NAME"
  fi
  # useradd --user-group made the group; userdel removes it only where login.defs says
  # USERGROUPS_ENAB yes, which a target tree may not have.
  if group_exists "$USER_NAME"; then
    # shellcheck disable=SC2086
    groupdel $PREFIX_ARGS "$USER_NAME"
  fi
  say "Purged: the config ($ETC), the data ($data) and the user $USER_NAME are gone too."
  exit 0
fi

# ------------------------------------------------------------------ --rollback

if [ "$MODE" = rollback ]; then
  must_be_root
  cur=$(release_of current)
  prev=$(release_of previous)
  [ -n "$cur" ] || die "Steppelink is not installed here (no $OPT/current)" "install it: sudo ./install.sh from an unpacked bundle"
  [ -n "$prev" ] && [ "$prev" != "$cur" ] || die "there is no release to go back to (no $OPT/previous other than $cur)" \
    "to install an older release, run its bundle's install.sh"
  say "Rolling back from $cur to $prev."
  roll_back_to "$prev" "$cur"
  if [ "$RB_RESULT" != down ]; then
    say "Rolled back: $prev is current; $cur stays as previous (install.sh --rollback again returns to it)."
    exit 0
  fi
  journal_tail
  die "$prev did not stay up after the rollback either" "read the log lines above; sudo steppelink doctor checks the config and the board"
fi

# ------------------------------------------------------------------ install or upgrade
#
# 1. Checks that change nothing: root, the bundle, the board, the manifest, the target tree.

must_be_root
BUNDLE=$(cd "$(dirname "$0")" && pwd -P)
[ -f "$BUNDLE/bundle.json" ] && [ -f "$BUNDLE/MANIFEST.sha256" ] || die "$BUNDLE is not an unpacked Steppelink bundle (no bundle.json or MANIFEST.sha256 beside install.sh)" \
  "unpack steppelink-<version>-linux-<arch>.tar.gz and run the install.sh inside it: tar xzf steppelink-*.tar.gz && cd steppelink-*/ && sudo ./install.sh"

# bundle.json is written by the bundle builder, one "key": "value" pair per key; read
# without a JSON tool (the board may have none).
json_value() { sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\{0,1\}\([^",}]*\).*/\1/p' "$BUNDLE/bundle.json" | head -n 1; }
VERSION=$(json_value version)
ARCH=$(json_value arch)
case $VERSION in
  '' | *[!A-Za-z0-9.+_-]*) die "bundle.json has no usable version (\"$VERSION\")" "this bundle is damaged: copy it again" ;;
esac
case $ARCH in
  arm64 | x64) ;;
  *) die "bundle.json names an architecture this installer does not know (\"$ARCH\")" "use a steppelink-<version>-linux-arm64 bundle on a board" ;;
esac
REL=$VERSION-$ARCH
NEW=$RELEASES/$REL

check_board() {
  machine=$(uname -m)
  case $machine in
    aarch64 | arm64) here=arm64 ;;
    x86_64 | amd64) here=x64 ;;
    armv6* | armv7* | armv8l | arm | armhf)
      die "this board runs a 32-bit system ($machine); this bundle is for 64-bit ($ARCH) and its runtime cannot run here" \
        "install a 64-bit OS on the board (Raspberry Pi OS Lite 64-bit, bookworm or later; a Pi 3, 4, 5 or Zero 2 W runs it), then run this again" ;;
    *) die "this machine is $machine; the bundle is for $ARCH" "use the bundle for this machine's architecture" ;;
  esac
  # A 64-bit kernel can run a 32-bit userland (older Raspberry Pi OS on a Pi 4): uname says
  # aarch64, yet a 64-bit program finds none of its libraries.
  if [ "$here" = arm64 ] && [ "$(getconf LONG_BIT 2>/dev/null || echo 64)" = 32 ]; then
    die "this board has a 64-bit kernel but a 32-bit system; this bundle is for 64-bit (arm64) and its runtime cannot run here" \
      "install a 64-bit OS on the board (Raspberry Pi OS Lite 64-bit, bookworm or later), then run this again"
  fi
  if [ "$here" != "$ARCH" ]; then
    die "this bundle is for $ARCH, and this machine is $here ($machine)" "use steppelink-$VERSION-linux-$here.tar.gz"
  fi
  libc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }') || libc=
  [ -n "$libc" ] || libc=$(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }') || libc=
  case $libc in
    [0-9]*.[0-9]*) ;;
    *) die "cannot find this system's glibc version (getconf GNU_LIBC_VERSION and ldd --version say nothing); the runtime needs glibc $GLIBC_MIN_MAJOR.$GLIBC_MIN_MINOR or later (musl systems such as Alpine cannot run it)" \
      "use Raspberry Pi OS bookworm, Debian 12 or Ubuntu 22.04, or later" ;;
  esac
  major=${libc%%.*}
  minor=${libc#*.}
  minor=${minor%%.*}
  if [ "$major" -lt "$GLIBC_MIN_MAJOR" ] || { [ "$major" -eq "$GLIBC_MIN_MAJOR" ] && [ "$minor" -lt "$GLIBC_MIN_MINOR" ]; }; then
    die "this system's glibc is $libc; the bundle's runtime needs $GLIBC_MIN_MAJOR.$GLIBC_MIN_MINOR or later" \
      "upgrade the OS to Raspberry Pi OS bookworm (Debian 12) or Ubuntu 22.04, or later: a fresh 64-bit image is the surest way"
  fi
}

if [ -n "$ROOT" ] && [ "$SELFTEST" = no ]; then
  # Preparing a card on another machine: this machine's architecture says nothing of the board's.
  say "Not checking this machine's architecture nor its glibc, nor running the self-test (--root with --no-selftest):"
  note "nothing checks that this $ARCH release runs on the board. It needs a 64-bit OS with glibc $GLIBC_MIN_MAJOR.$GLIBC_MIN_MINOR or later;"
  note "run steppelink selftest on the board after its first boot."
else
  check_board
fi

say "Checking the bundle's files against MANIFEST.sha256 ..."
for f in install.sh bundle.json bin/steppelink runtime/bin/node; do
  # A manifest without the essential files would prove nothing.
  grep -Eq "  (\./)?$f\$" "$BUNDLE/MANIFEST.sha256" || die "MANIFEST.sha256 does not list $f: the bundle is incomplete or damaged; nothing was changed" \
    "copy the .tar.gz again and unpack it afresh"
done
(cd "$BUNDLE" && sha256sum -c --quiet --strict MANIFEST.sha256) >&2 || die "the bundle's files do not match MANIFEST.sha256 (the lines above name them): it is damaged, incomplete or changed; nothing was changed" \
  "copy steppelink-$VERSION-linux-$ARCH.tar.gz to the board again (check its size against the original), and unpack it afresh in place of $BUNDLE"

if [ -n "$ROOT" ]; then
  for f in passwd group shadow gshadow; do
    [ -f "$ROOT/etc/$f" ] || die "$ROOT/etc/$f does not exist: --root must be the root of an installed system (useradd --prefix edits its /etc/passwd, group, shadow and gshadow)" \
      "mount the card's root partition (not its boot partition) and give that directory"
  done
fi

OLD=$(release_of current)
DATA=$(data_dir)
if [ -z "$OLD" ]; then
  KIND=install
  say "Installing Steppelink $REL${ROOT:+ into $ROOT}."
elif [ "$OLD" = "$REL" ]; then
  KIND=reinstall
  say "Steppelink $REL is already current: installing it again in place (config and data are kept)."
else
  KIND=upgrade
  say "Upgrading Steppelink from $OLD to $REL."
  # The copy of the store taken before the upgrade is the way back: make sure it fits
  # without eating into the free space the gateway keeps for alarms (limits.reserveMB).
  if [ -e "$DATA/gateway.db" ]; then
    need_k=$(du -ck "$DATA/gateway.db" "$DATA/gateway.db-wal" 2>/dev/null | awk 'END { print $1 }')
    free_k=$(df -Pk "$DATA" | awk 'NR == 2 { print $4 }')
    if [ "$free_k" -lt $((need_k + 32768)) ]; then
      die "not enough free space in $DATA to keep a copy of the store before the upgrade (the store is $((need_k / 1024)) MB, $((free_k / 1024)) MB are free, and 32 MB must stay free beside it); nothing was changed" \
        "free some space on that partition (old files; journalctl --vacuum-size=16M), then run this again"
    fi
  fi
fi

# 2. The new release, copied beside the others under a temporary name and checked there.
#    Nothing installed has changed yet; a failure removes the copy (the EXIT trap).

# A reinstall of the same release: nothing to copy when the installed copy is intact and
# its manifest is the bundle's (the common case: install.sh run twice). Otherwise a fresh
# copy replaces it, never a copy over the running one.
SAME_FILES=no
if [ -d "$NEW" ] && cmp -s "$BUNDLE/MANIFEST.sha256" "$NEW/MANIFEST.sha256" && (cd "$NEW" && sha256sum -c --quiet --strict MANIFEST.sha256) >/dev/null 2>&1; then
  SAME_FILES=yes
fi

if [ "$SAME_FILES" = no ]; then
  mkdir -p "$RELEASES"
  chmod 0755 "$OPT" "$RELEASES"
  STAGE=$RELEASES/.incoming-$REL-$$
  cp -a "$BUNDLE" "$STAGE" || die "could not copy the bundle to $STAGE (is the disk full? df -h $OPT)" "free some space, then run this again"
  # tar as root keeps the builder's owner (uid 1000 ...): a user with that uid could then
  # change the program that root runs (sudo steppelink doctor). Root's, and read-only to others.
  chown -R 0:0 "$STAGE"
  chmod -R go-w "$STAGE"
  TESTED=$STAGE
else
  TESTED=$NEW
fi

if [ "$SELFTEST" = yes ]; then
  say "Running the new release's self-test ..."
  rc=0
  selftest "$TESTED/bin/steppelink" selftest || rc=$?
  [ "$rc" = 0 ] || die "the self-test of $REL failed (exit status $rc, its reason above): this release cannot run on this board; nothing installed was changed" \
    "check that the bundle is the one for this board (linux-$ARCH) and the OS is 64-bit with glibc $GLIBC_MIN_MAJOR.$GLIBC_MIN_MINOR or later; send the lines above to the developers"
  # An older release over a store a newer one has already migrated (a downgrade, or an
  # install over the data an uninstall kept) would not start: say so now, while nothing has
  # changed. The self-test only reads the store (the running gateway keeps it).
  if [ -e "$DATA/gateway.db" ]; then
    selftest_store "$TESTED" "$DATA"
    rc=$ST_RC
    case $rc in
      0) ;;
      3) die "the store in $DATA was written by a newer release than $REL, which cannot open it; nothing was changed" \
        "install the release that wrote it${OLD:+ ($OLD)} or a newer one${OLD:+; to go back to the release before $OLD: sudo $0 --rollback}" ;;
      *) die "the self-test of $REL on the store in $DATA failed (exit status $rc, its reason above); nothing was changed" \
        "sudo steppelink doctor checks the store; send the lines above to the developers" ;;
    esac
  fi
else
  say "Not running the self-test (--no-selftest): nothing checks that $REL runs on the board."
fi

# 3. The system: user, directories, config, service files. None of it stops the running
#    gateway (systemd reads the new unit at the next start).

ensure_user

mkdir -p "$ETC"
chown "0:$USER_GID" "$ETC"
chmod 0750 "$ETC"
if [ -e "$CONFIG" ]; then
  note "kept the config $CONFIG as it is"
  # Its words are the technician's; its owner and mode are the installer's: the gateway runs
  # as steppelink and must read it (a root-only 0600 file would stop it at every start).
  cfg_was=$(stat -c '%u:%g %a' "$CONFIG")
  chown "0:$USER_GID" "$CONFIG"
  chmod 0640 "$CONFIG"
  [ "$cfg_was" = "0:$USER_GID 640" ] || note "set $CONFIG to root:$USER_NAME 0640 (it was $cfg_was): the gateway's user must read it, nobody else may"
else
  # From the release being installed: its template matches its config loader.
  cp "$TESTED/deploy/gateway.toml" "$CONFIG.new"
  chown "0:$USER_GID" "$CONFIG.new"
  chmod 0640 "$CONFIG.new"
  mv -f "$CONFIG.new" "$CONFIG"
  note "wrote the config template $CONFIG (root:$USER_NAME 0640)"
fi

# The password file: read by systemd (root) for the service; nobody else's business.
if [ -e "$ETC/gateway.env" ] && [ -n "$(find "$ETC/gateway.env" -perm /077)" ]; then
  chown 0:0 "$ETC/gateway.env"
  chmod 0600 "$ETC/gateway.env"
  note "set $ETC/gateway.env to root 0600: it holds the MQTT password"
fi

mkdir -p "$DATA"
chown "$USER_UID:$USER_GID" "$DATA"
chmod 0750 "$DATA"

mkdir -p "$(dirname "$JOURNALD_DROPIN")" "$(dirname "$UDEV_EXAMPLE")" "$(dirname "$BIN_LINK")"
JOURNALD_NEW=no
[ -e "$JOURNALD_DROPIN" ] || JOURNALD_NEW=yes
if ! cmp -s "$TESTED/deploy/journald/steppelink.conf" "$JOURNALD_DROPIN"; then
  cp "$TESTED/deploy/journald/steppelink.conf" "$JOURNALD_DROPIN.new"
  chmod 0644 "$JOURNALD_DROPIN.new"
  mv -f "$JOURNALD_DROPIN.new" "$JOURNALD_DROPIN"
  [ "$JOURNALD_NEW" = yes ] || note "updated $JOURNALD_DROPIN: it applies at the next boot (or: sudo systemctl restart systemd-journald)"
fi
cp "$TESTED/deploy/udev/99-steppelink-terminal.rules.example" "$UDEV_EXAMPLE.new"
chmod 0644 "$UDEV_EXAMPLE.new"
mv -f "$UDEV_EXAMPLE.new" "$UDEV_EXAMPLE"

# 4. The release in place. The service is stopped for the switch on an upgrade (to another
#    release, older ones included), and on a reinstall only if its files or its unit changed;
#    a first install has nothing running.

if [ "$KIND" = upgrade ] || { [ "$KIND" = reinstall ] && { [ "$SAME_FILES" = no ] || ! cmp -s "$TESTED/deploy/systemd/$UNIT.service" "$UNIT_FILE"; }; }; then
  if [ "$LIVE" = yes ]; then
    say "Stopping the gateway for the switch ..."
    STOPPED=yes
    "$SYSTEMCTL" stop "$UNIT" || true
  fi
  RESTART=yes
else
  RESTART=no
fi

if [ "$KIND" = upgrade ] && [ -e "$DATA/gateway.db" ]; then
  # The store as $OLD left it, stopped: the way back if $REL migrates it and then fails.
  # Only the latest is kept (each is as big as the store).
  rm -rf "$DATA/pre-upgrade"
  mkdir -p "$DATA/pre-upgrade"
  chmod 0750 "$DATA/pre-upgrade"
  chown "$USER_UID:$USER_GID" "$DATA/pre-upgrade"
  copy_store "$DATA" "$DATA/pre-upgrade/$OLD"
  chown "$USER_UID:$USER_GID" "$DATA/pre-upgrade/$OLD"
  chmod 0750 "$DATA/pre-upgrade/$OLD"
  note "copied the store to $DATA/pre-upgrade/$OLD (the way back, should $REL fail)"
fi

if [ "$SAME_FILES" = no ]; then
  if [ -d "$NEW" ]; then
    # The same version again, with other files: the old copy goes aside (the gateway was
    # stopped above if it ran from it), the new one takes its name.
    mv -T "$NEW" "$RELEASES/.replaced-$REL-$$"
    mv -T "$STAGE" "$NEW" || {
      mv -T "$RELEASES/.replaced-$REL-$$" "$NEW"
      die "could not put the new copy of $REL in place; the old copy is back" "run this again"
    }
    rm -rf "$RELEASES/.replaced-$REL-$$"
  else
    mv -T "$STAGE" "$NEW"
  fi
  STAGE=
fi

if [ "$KIND" = upgrade ]; then
  switch_link previous "$OLD"
fi
switch_link current "$REL"
ln -sfn /opt/steppelink/current/bin/steppelink "$BIN_LINK.new"
if [ -e "$BIN_LINK" ] || [ -L "$BIN_LINK" ]; then
  if [ "$(readlink "$BIN_LINK" || true)" != /opt/steppelink/current/bin/steppelink ]; then
    note "replaced $BIN_LINK (it was $(readlink "$BIN_LINK" || echo 'a file'): an npm install? remove it with npm rm -g steppelink)"
  fi
fi
mv -T "$BIN_LINK.new" "$BIN_LINK"

# Keep current, previous, and nothing older: each release is about the size of a Node.js
# runtime, and the card is small. Leftovers of an interrupted run go too.
cur_keep=$(release_of current)
prev_keep=$(release_of previous)
for d in "$RELEASES"/* "$RELEASES"/.incoming-* "$RELEASES"/.replaced-*; do
  [ -e "$d" ] || continue
  name=$(basename "$d")
  if [ "$name" != "$cur_keep" ] && [ "$name" != "$prev_keep" ]; then
    rm -rf "$d"
    note "removed the old release $name"
  fi
done

install_unit "$NEW"
if [ "$LIVE" = yes ]; then
  "$SYSTEMCTL" daemon-reload
  if [ "$JOURNALD_NEW" = yes ]; then
    say "Restarting systemd-journald: from now on the system log is kept in RAM (32 MB at most), not on the SD card; it no longer survives a reboot ($JOURNALD_DROPIN says how to keep it for a while)."
    "$SYSTEMCTL" restart systemd-journald || warn "could not restart systemd-journald; the log goes to RAM from the next boot"
  fi
  "$SYSTEMCTL" enable "$UNIT"
else
  # What `systemctl enable` does for WantedBy=multi-user.target: the gateway then starts at
  # the card's first boot (and refuses to run until the config is filled in).
  mkdir -p "$(dirname "$WANTS_LINK")"
  ln -sfn "/etc/systemd/system/$UNIT.service" "$WANTS_LINK"
  note "enabled $UNIT by its link $WANTS_LINK (systemctl was not run)"
  [ "$JOURNALD_NEW" = no ] || note "the system log goes to RAM from the first boot ($JOURNALD_DROPIN)"
fi

# 5. Start, check, and on an upgrade that does not come up, go back.

next_steps() {
  say ""
  say "Next steps:"
  note "1. Fill in every CHANGE-ME in the config:  sudo nano /etc/steppelink/gateway.toml"
  note "   the MQTT password in /etc/steppelink/gateway.env (mode 0600): STEPPELINK_MQTT_PASSWORD=..."
  note "   the platform's public key as /etc/steppelink/platform.pub"
  note "   the serial port: ls -l /dev/serial/by-id/; for an adapter without a serial number (CH340),"
  note "   see /etc/udev/rules.d/99-steppelink-terminal.rules.example"
  note "2. Check the board:  sudo steppelink doctor"
  note "3. Start the gateway:  sudo systemctl start $UNIT"
  note "   (it is enabled: from the next boot on it starts by itself; while a CHANGE-ME is left"
  note "   it refuses to run, and says why: journalctl -u $UNIT)"
}

if [ "$LIVE" = no ] || [ "$START" = no ]; then
  say "Installed $REL${ROOT:+ in $ROOT}; the gateway was not started ($([ "$START" = no ] && echo '--no-start' || echo 'not the running system'))."
  if config_is_template; then next_steps; fi
  exit 0
fi
if config_is_template; then
  say "Installed $REL. The gateway is enabled but NOT started: $CONFIG still has CHANGE-ME values."
  next_steps
  exit 0
fi
if [ "$KIND" = reinstall ] && [ "$RESTART" = no ] && service_active; then
  say "Reinstalled $REL: nothing had changed, the gateway runs on."
  exit 0
fi

say "Starting the gateway ..."
STOPPED=no
if start_and_check; then
  say "Steppelink $REL is installed and the gateway runs."
  if [ "$KIND" = upgrade ]; then
    note "the release before, $OLD, is kept: sudo /opt/steppelink/current/install.sh --rollback goes back to it"
  fi
  note "check the board: sudo steppelink doctor"
  exit 0
fi

if [ "$KIND" != upgrade ]; then
  journal_tail
  die "the gateway did not stay up after the install of $REL (the log lines above say why)" \
    "sudo steppelink doctor checks the config and the board; the service keeps retrying every 5 s"
fi
warn "the gateway did not stay up after the upgrade to $REL: going back to $OLD"
journal_tail
roll_back_to "$OLD" "$REL"
if [ "$RB_RESULT" != down ]; then
  die "the upgrade to $REL failed (the log lines above say why); the gateway runs $OLD again${RB_ASIDE:+, on the store from before the upgrade: what $REL stored is in $RB_ASIDE (see above)}" \
    "send the log lines above to the developers; $REL stays in $RELEASES for them, and is removed by the next install"
fi
journal_tail
die "the upgrade to $REL failed, and $OLD did not stay up after going back either" \
  "sudo steppelink doctor checks the config and the board; read the log lines above"
