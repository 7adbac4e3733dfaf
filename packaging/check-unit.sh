#!/usr/bin/env bash
# Verify a unit in systemd/ with `systemd-analyze verify`, on hosts where systemd is not PID 1
# and the binary is not installed: systemd/NAME.service for the binary NAME given.
# Usage: packaging/check-unit.sh PATH/TO/BINARY   (target/release/sentineld, .../sentinel-agent)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:?usage: $0 PATH/TO/BINARY}
name=$(basename "$bin")
unit="$name.service"
unit_src="$here/systemd/$unit"
[ -f "$unit_src" ] || { echo "check-unit: no unit $unit_src for $name" >&2; exit 1; }
# verify requires an absolute, executable ExecStart path.
bin=$(realpath "$bin")
[ -x "$bin" ] || { echo "check-unit: $bin is not executable" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Same file name, so the unit name is what verify checks; only the binary path differs from
# what the package installs.
sed -E "s#^(ExecStart|ExecStopPost)=/usr/bin/$name #\1=$bin #" "$unit_src" >"$tmp/$unit"
grep -q "^ExecStart=$bin " "$tmp/$unit" \
    || { echo "check-unit: ExecStart=/usr/bin/$name not found in $unit_src" >&2; exit 1; }

# Documentation=man:NAME(N): the page is not installed on this host, so point man at the one
# build-packages.sh generated; without it, skip the man check (--man=no).
man_check=no
for page in "$here"/target/assets/man/"$name".[18].gz; do
    [ -f "$page" ] || continue
    section=${page: -4:1}
    mkdir -p "$tmp/man/man$section"
    cp "$page" "$tmp/man/man$section/"
    export MANPATH="$tmp/man"
    man_check=yes
done
# verify exits 0 on parse warnings ("Unknown key", "Failed to parse"), so any output
# that mentions our unit counts as a failure, not just the exit status.
status=0
out=$(systemd-analyze verify --man="$man_check" "$tmp/$unit" 2>&1) || status=$?
if [ -n "$out" ]; then printf '%s\n' "$out"; fi
if [ "$status" -ne 0 ] || grep -q "$name" <<<"$out"; then
    echo "check-unit: FAILED: systemd-analyze verify reported problems in $unit" >&2
    exit 1
fi

# The offline exposure score of the hardening settings may only go down: each unit's figure
# is recorded here and in docs/operations.md ("Hardening"); lower it in both when it improves.
case "$name" in
    sentineld) max_exposure=3.5 ;;
    sentinel-agent) max_exposure=2.1 ;;
    *) echo "check-unit: no recorded exposure for $name" >&2; exit 1 ;;
esac
line=$(systemd-analyze security --offline=yes "$tmp/$unit" 2>&1 | grep 'Overall exposure level') \
    || { echo "check-unit: FAILED: systemd-analyze security printed no exposure for $unit" >&2; exit 1; }
echo "$line"
exposure=$(sed -E 's/.*: ([0-9]+\.[0-9]+) .*/\1/' <<<"$line")
if ! awk -v got="$exposure" -v max="$max_exposure" 'BEGIN { exit !(got <= max) }'; then
    echo "check-unit: FAILED: $unit exposure $exposure is above the recorded $max_exposure" >&2
    exit 1
fi

# A panic aborts the daemon (SIGABRT, see docs/reliability.md): systemd must start it again,
# and the new daemon rolls back what the journal holds. on-failure covers SIGABRT.
if ! grep -Eq '^Restart=(on-failure|on-abnormal|on-abort|always)$' "$unit_src"; then
    echo "check-unit: FAILED: $unit does not restart after an abort (Restart=on-failure)" >&2
    exit 1
fi
if grep -Eq '^RestartPreventExitStatus=.*(SIGABRT|ABRT|6)' "$unit_src"; then
    echo "check-unit: FAILED: $unit prevents the restart after SIGABRT" >&2
    exit 1
fi
echo "check-unit: $unit verified OK (man page checked: $man_check; exposure $exposure <= $max_exposure)"
