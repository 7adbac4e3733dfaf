#!/usr/bin/env bash
# Idle footprint of sentineld on the example config: RSS and CPU after it settles.
# Usage: benches/idle_footprint.sh [SECONDS]   (default 60; builds a release build; NO_BUILD=1
#        uses target/release as it is)
# Results go to docs/performance.md by hand, with the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
window="${1:-60}"
[[ "${NO_BUILD:-}" == 1 ]] || cargo build --release --quiet --bin sentineld

work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# The example config, with state, socket and port moved into the temp dir.
sed -e "s|/var/lib/sentinel|$work/state|" \
    -e "s|/run/sentinel/sentinel.sock|$work/sentinel.sock|" \
    -e "s|127.0.0.1:9137|127.0.0.1:$port|g" \
    sentineld.toml.example > "$work/sentineld.toml"

target/release/sentineld --config "$work/sentineld.toml" --log-format text 2>"$work/stderr" &
pid=$!
sleep 5 # start-up and the first probe rounds

ticks_per_second="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
start_ticks="$(cpu_ticks)"
sleep "$window"
end_ticks="$(cpu_ticks)"

rss_kib="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
hwm_kib="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")"
threads="$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")"
# Anonymous memory is the daemon's own; file pages are the binary's code and data it touched,
# clean and shared with the page cache (docs/performance.md).
anon_kib="$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")"
file_kib="$(awk '/^RssFile:/ {print $2}' "/proc/$pid/status")"
cpu_seconds="$(awk -v a="$start_ticks" -v b="$end_ticks" -v t="$ticks_per_second" 'BEGIN {printf "%.2f", (b - a) / t}')"
cpu_percent="$(awk -v s="$cpu_seconds" -v w="$window" 'BEGIN {printf "%.3f", 100 * s / w}')"
binary_kib="$(( $(stat -c %s target/release/sentineld) / 1024 ))"

echo "sentineld idle footprint (example config, ${window}s window)"
echo "  RSS now          ${rss_kib} KiB"
echo "  RSS peak (HWM)   ${hwm_kib} KiB"
echo "    anonymous      ${anon_kib} KiB"
echo "    file pages     ${file_kib} KiB"
echo "  threads          ${threads}"
echo "  CPU in window    ${cpu_seconds} s (${cpu_percent} % of one core)"
echo "  binary size      ${binary_kib} KiB"
