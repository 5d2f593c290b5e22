#!/usr/bin/env bash
# The arm64 bundle on an x64 machine, under emulation and with no network: does what a
# Raspberry Pi would run actually run? Debian's qemu-user-static runs the bundle's own
# aarch64 Node.js (with the aarch64 C library of Debian's cross toolchain), inside a network
# namespace of its own that has only a loopback interface, and checks, in order:
#   1. the runtime starts (node --version);
#   2. `steppelink selftest`: every native module loads for aarch64 (better-sqlite3, compiled
#      by scripts/bundle.mjs with the cross compiler; serialport's, zstd's and cbor-extract's
#      prebuilt ones) and works once, and a store opens, keeps an alarm and closes;
#   3. `steppelink demo --once --memory-serial`: the whole alarm loop in one process (the
#      embedded broker, the gateway with its SQLite store, a terminal on an in-memory serial
#      line, the console) until the alarm is resolved.
# It prints each step's time and, with --record FILE, appends the run to FILE (what the
# closing note of issue 14 quotes: bench/results/bundle-qemu-arm64.md).
#
# Usage: scripts/bundle-qemu.sh [--record FILE] [BUNDLE.tar.gz]
#   without BUNDLE: builds build/steppelink-<version>-linux-arm64.tar.gz first
#   (npm run bundle -- --arch arm64).
# Needs (Debian): apt-get install -y qemu-user-static g++-aarch64-linux-gnu
#   (the second brings /usr/aarch64-linux-gnu, the aarch64 C and C++ libraries qemu loads
#   the runtime with; the bundle build needs it anyway).
# Root, for the network namespace (unshare --net); as another user: unshare --map-root-user.
#
# Not in every CI run: the loop under emulation takes minutes on a 2-core machine (the
# record says how long); the x64 bundle is installed and run in CI (tests/bundle.e2e.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

record=""
bundle=""
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bundle="$1"; shift ;;
  esac
done

missing=""
command -v qemu-aarch64-static >/dev/null 2>&1 || missing="$missing qemu-user-static"
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing="$missing g++-aarch64-linux-gnu"
if [ -n "$missing" ]; then
  echo "bundle-qemu: needs$missing: apt-get update && apt-get install -y$missing" >&2
  exit 1
fi

if [ -z "$bundle" ]; then
  version=$(node -p 'require("./package.json").version')
  bundle="build/steppelink-$version-linux-arm64.tar.gz"
  npm run bundle -- --arch arm64 >&2
fi
[ -f "$bundle" ] || { echo "bundle-qemu: no bundle at $bundle" >&2; exit 1; }

work=$(mktemp -d /tmp/steppelink-qemu-XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -xzf "$bundle" -C "$work"
dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
(cd "$dir" && sha256sum -c --quiet MANIFEST.sha256)
arch=$(node -p "require('$dir/bundle.json').arch")
[ "$arch" = arm64 ] || { echo "bundle-qemu: $bundle is a linux-$arch bundle, not arm64" >&2; exit 1; }

# What runs inside the namespace: the same three steps, timed. The runtime is started
# through qemu by hand (this container has no binfmt_misc to do it by itself), with
# QEMU_LD_PREFIX for the aarch64 loader and C library.
cat >"$work/steps.sh" <<'STEPS'
set -eu
ip link set lo up
dir=$1
qemu() { QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64-static "$dir/runtime/bin/node" "$@"; }
step() {
  name=$1; shift
  start=$(date +%s.%N)
  if "$@"; then status=ok; else status="FAILED ($?)"; fi
  end=$(date +%s.%N)
  awk -v n="$name" -v s="$status" -v a="$start" -v b="$end" 'BEGIN { printf "STEP %s: %s in %.1f s\n", n, s, b - a }'
  [ "$status" = ok ]
}
echo "network in this namespace: $(ip -brief address | tr '\n' ' ')"
if getent hosts registry.npmjs.org >/dev/null 2>&1; then echo "the namespace has a network: refusing to run" >&2; exit 1; fi
step runtime qemu --version
step selftest qemu "$dir/app/dist/cli/main.js" selftest
step demo qemu "$dir/app/dist/cli/main.js" demo --once --memory-serial --timeout 600
STEPS

log="$work/run.log"
set +e
unshare --net sh "$work/steps.sh" "$dir" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

if [ -n "$record" ]; then
  {
    echo
    echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(nproc) cores, $(qemu-aarch64-static --version | head -n1)"
    echo
    echo "bundle: $(basename "$bundle") ($(du -m "$bundle" | cut -f1) MB), $(tr -d '\n ' <"$dir/bundle.json" | cut -c1-200)"
    echo
    echo '```text'
    grep -v '^$' "$log"
    echo '```'
    echo
    echo "exit status: $rc"
  } >>"$record"
  echo "bundle-qemu: recorded in $record"
fi
exit "$rc"
