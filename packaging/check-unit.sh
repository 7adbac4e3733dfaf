#!/usr/bin/env bash
# Verify systemd/sentineld.service with `systemd-analyze verify`, on hosts where systemd
# is not PID 1 and /usr/bin/sentineld is not installed.
# Usage: packaging/check-unit.sh PATH/TO/sentineld   (e.g. target/release/sentineld)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
unit_src="$here/systemd/sentineld.service"
bin=${1:?usage: $0 PATH/TO/sentineld}
# verify requires an absolute, executable ExecStart path.
bin=$(realpath "$bin")
[ -x "$bin" ] || { echo "check-unit: $bin is not executable" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Same file name, so the unit name (sentineld.service) is what verify checks; only the
# binary path differs from what the package installs.
sed "s#^ExecStart=/usr/bin/sentineld #ExecStart=$bin #" "$unit_src" >"$tmp/sentineld.service"
grep -q "^ExecStart=$bin " "$tmp/sentineld.service" \
    || { echo "check-unit: ExecStart=/usr/bin/sentineld not found in $unit_src" >&2; exit 1; }

# Documentation=man:sentineld(8): the page is not installed on this host, so point man at
# the one build-packages.sh generated; without it, skip the man check (--man=no).
man_check=no
if [ -f "$here/target/assets/man/sentineld.8.gz" ]; then
    mkdir "$tmp/man" "$tmp/man/man8"
    cp "$here/target/assets/man/sentineld.8.gz" "$tmp/man/man8/"
    export MANPATH="$tmp/man"
    man_check=yes
fi
# verify exits 0 on parse warnings ("Unknown key", "Failed to parse"), so any output
# that mentions our unit counts as a failure, not just the exit status.
status=0
out=$(systemd-analyze verify --man="$man_check" "$tmp/sentineld.service" 2>&1) || status=$?
if [ -n "$out" ]; then printf '%s\n' "$out"; fi
if [ "$status" -ne 0 ] || grep -q 'sentineld' <<<"$out"; then
    echo "check-unit: FAILED: systemd-analyze verify reported problems in sentineld.service" >&2
    exit 1
fi

# Informational only: the offline exposure score of the hardening settings.
systemd-analyze security --offline=yes "$tmp/sentineld.service" 2>/dev/null \
    | grep 'Overall exposure' || true
echo "check-unit: sentineld.service verified OK (man page checked: $man_check)"
