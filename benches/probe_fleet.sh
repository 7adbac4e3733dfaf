#!/usr/bin/env bash
# A fleet of 1,000 HTTP probes at a 1 s interval: CPU and peak RSS of sentineld, then of Monit
# doing the same checks, in the same run and over the same length of window.
# Usage: benches/probe_fleet.sh [SECONDS]   (default 60; root; needs monit and busybox-static,
#        builds a release build; NO_BUILD=1 uses target/release as it is; SERVER=busybox swaps the
#        HTTP server for busybox httpd)
#
# Everything runs in a private network namespace (unshare --net), so the only TCP traffic there is
# the checks: one HTTP server on 127.0.0.1 serving /health, and the kernel's count of accepted
# connections (TcpPassiveOpens, namespaced) tells how many checks really reached the server per
# second. The server is a small Python asyncio one with a 4096-connection accept queue: busybox
# httpd (the test image's server) serves 1,000 req/s spread out, but listens with a backlog of 9,
# and sentineld starts all 1,000 checks within ~100 ms of each other every second, so most of
# them overflow its accept queue (counted here as TcpExt ListenOverflows), wait for the 1 s SYN
# retransmit and time out; SERVER=busybox shows that. Each check is one connection (the
# server closes after one answer). The two monitors run one after the other, never together, so
# neither competes with the other for the 2 cores; each gets a 5 s warm-up, then a SECONDS window
# in which CPU (utime+stime from /proc/PID/stat) is measured; peak RSS is VmHWM at the window's end.
# Results go to docs/performance.md by hand, with the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
window="${1:-60}"
[[ "$window" =~ ^[0-9]+$ ]] && (( window >= 5 && window <= 600 )) || { echo "SECONDS must be 5..600" >&2; exit 2; }
probes=1000
warmup=5

if [[ "${SENTINEL_FLEET_IN_NETNS:-}" != 1 ]]; then
    (( EUID == 0 )) || { echo "run as root (private network namespace)" >&2; exit 2; }
    command -v monit >/dev/null || { echo "monit missing: apt-get install -y monit" >&2; exit 2; }
    [[ -x /bin/busybox ]] || { echo "/bin/busybox missing: apt-get install -y busybox-static" >&2; exit 2; }
    [[ "${NO_BUILD:-}" == 1 ]] || cargo build --release --quiet --bin sentineld --bin sentinelctl
    exec timeout --kill-after=10 $((2 * window + 120)) \
        unshare --net env SENTINEL_FLEET_IN_NETNS=1 bash "$0" "$window"
fi

# --- inside the private network namespace ---------------------------------------------------
ip link set lo up
work="$(mktemp -d)"
# Private copies: another build in the shared target dir must not swap the binary mid-run.
cp target/release/sentineld target/release/sentinelctl "$work/"
server_pid="" pid=""
stop() { # stop PID and wait for it
    [[ -n "$1" ]] || return 0
    kill "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() { stop "$pid"; stop "$server_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
mkdir -p "$work/www"
echo ok > "$work/www/health"
case "${SERVER:-python}" in
    busybox)
        server_desc="busybox httpd (fork per request)"
        /bin/busybox httpd -f -p "127.0.0.1:$port" -h "$work/www" &
        ;;
    python)
        server_desc="python3 asyncio server (backlog 4096)"
        python3 - "$port" <<'PY' &
import asyncio, sys
async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await server.serve_forever()
asyncio.run(main())
PY
        ;;
    *) echo "SERVER must be busybox or python" >&2; exit 2 ;;
esac
server_pid=$!
for _ in $(seq 50); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
    sleep 0.1
done

ticks_per_second="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
passive_opens() { awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i; h = 1 } else print $c }' /proc/net/snmp; }
# Connections the server's full accept queue turned away (TcpExt ListenOverflows, namespaced).
listen_overflows() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1 } else print $c }' /proc/net/netstat; }
# Measure PID over the window after the warm-up:
# "cpu_s rss_peak_kib rss_kib threads req_per_s listen_overflows server_cpu_s anon_kib file_kib".
measure() {
    local p="$1" t0 t1 o0 o1 l0 l1 v0 v1
    sleep "$warmup"
    t0="$(cpu_ticks "$p")"; o0="$(passive_opens)"; l0="$(listen_overflows)"; v0="$(cpu_ticks "$server_pid")"
    before_window
    sleep "$window"
    t1="$(cpu_ticks "$p")"; o1="$(passive_opens)"; l1="$(listen_overflows)"; v1="$(cpu_ticks "$server_pid")"
    after_window
    awk -v a="$t0" -v b="$t1" -v t="$ticks_per_second" -v w="$window" -v oa="$o0" -v ob="$o1" \
        -v hwm="$(status_kib "$p" VmHWM)" -v rss="$(status_kib "$p" VmRSS)" -v th="$(status_kib "$p" Threads)" \
        -v la="$l0" -v lb="$l1" -v va="$v0" -v vb="$v1" \
        -v anon="$(status_kib "$p" RssAnon)" -v file="$(status_kib "$p" RssFile)" \
        'BEGIN {printf "%.2f %d %d %d %.0f %d %.2f %d %d\n", (b - a) / t, hwm, rss, th, (ob - oa) / w, lb - la, (vb - va) / t, anon, file}'
}

# --- sentineld ---
sock="$work/sentinel.sock"
{
    printf '[daemon]\nstate_dir = "%s"\nsocket = "%s"\n\n[http]\nlisten = "127.0.0.1:%s"\n' \
        "$work/state" "$sock" "$(free_port)"
    for ((i = 0; i < probes; i++)); do
        printf '\n[[probe]]\nname = "p%04d"\nkind = "http"\nurl = "http://127.0.0.1:%s/health"\ninterval = "1s"\ntimeout = "1s"\n' "$i" "$port"
    done
} > "$work/sentineld.toml"
"$work/sentineld" --config "$work/sentineld.toml" --log-format text 2>"$work/sentineld.stderr" &
pid=$!
# checks_total and failures_total summed over all probes, and how many are up: "checks failures up".
board() {
    "$work/sentinelctl" --socket "$sock" --json status | python3 -c '
import json, sys
p = json.load(sys.stdin)["probes"]
print(sum(x["checks_total"] for x in p), sum(x["failures_total"] for x in p), sum(x["state"] == "up" for x in p), len(p))'
}
before_window() { board > "$work/board0"; }
after_window() { board > "$work/board1"; }
read -r s_cpu s_hwm s_rss s_threads s_reqs s_overflows s_server s_anon s_file < <(measure "$pid")
read -r c0 f0 _ _ < "$work/board0"
read -r c1 f1 s_up s_total < "$work/board1"
s_checks=$(( (c1 - c0) / window ))
s_failures=$(( f1 - f0 ))
s_transitions="$(grep -c 'status=' "$work/sentineld.stderr" || true)"
stop "$pid"; pid=""
sleep 2

# --- Monit ---
mkdir -p "$work/monit/events"
{
    printf 'set daemon 1\nset logfile %s\nset pidfile %s\nset idfile %s\nset statefile %s\n' \
        "$work/monit/monit.log" "$work/monit/monit.pid" "$work/monit/monit.id" "$work/monit/monit.state"
    printf 'set eventqueue basedir %s slots 100\n' "$work/monit/events"
    for ((i = 0; i < probes; i++)); do
        printf '\ncheck host p%04d with address 127.0.0.1\n    if failed port %s protocol http request "/health" then alert\n' "$i" "$port"
    done
} > "$work/monit/monitrc"
chmod 0600 "$work/monit/monitrc"
monit -t -c "$work/monit/monitrc" >/dev/null
monit -I -c "$work/monit/monitrc" >"$work/monit/stdout" 2>&1 &
pid=$!
before_window() { :; }
after_window() { :; }
read -r m_cpu m_hwm m_rss m_threads m_reqs m_overflows m_server _ _ < <(measure "$pid")
m_failed="$(grep -ci 'failed' "$work/monit/monit.log" || true)"
stop "$pid"; pid=""

pct() { awk -v s="$1" -v w="$window" 'BEGIN {printf "%.1f", 100 * s / w}'; }
echo "probe fleet: $probes HTTP probes every 1 s against $server_desc on 127.0.0.1"
echo "  ${window} s window after ${warmup} s warm-up each; sentineld first, then Monit (never both at once)"
printf '  %-10s %8s %8s %11s %11s %8s %13s %16s %12s\n' "" "CPU s" "% core" "RSS peak" "RSS end" threads "req/s served" "accept overflows" "server CPU s"
printf '  %-10s %8s %8s %7s KiB %7s KiB %8s %13s %16s %12s\n' sentineld "$s_cpu" "$(pct "$s_cpu")" "$s_hwm" "$s_rss" "$s_threads" "$s_reqs" "$s_overflows" "$s_server"
printf '  %-10s %8s %8s %7s KiB %7s KiB %8s %13s %16s %12s\n' monit "$m_cpu" "$(pct "$m_cpu")" "$m_hwm" "$m_rss" "$m_threads" "$m_reqs" "$m_overflows" "$m_server"
echo "  sentineld RSS at the end: $s_anon KiB anonymous (its own), $s_file KiB file pages (the binary's code)"
echo "  sentineld: $s_up of $s_total probes up at the end; ${s_checks} checks/s by its own count; $s_failures failed checks in the window; $s_transitions logged transitions"
echo "  monit: ~$m_reqs checks/s reached the server, i.e. a full cycle of $probes hosts every $(awk -v r="$m_reqs" -v n="$probes" 'BEGIN {if (r > 0) printf "%.2f", n / r; else print "?"}') s (asked: 1 s); $m_failed 'failed' lines in its log"
# Issue 13's goals: CPU per check at most half of Monit's, and a peak RSS of at most 15 MB.
awk -v s="$s_cpu" -v m="$m_cpu" -v sr="$s_reqs" -v mr="$m_reqs" -v w="$window" -v h="$s_hwm" 'BEGIN {
    sc = (sr > 0 ? 1e6 * s / (sr * w) : 0); mc = (mr > 0 ? 1e6 * m / (mr * w) : 0)
    printf "  CPU per check: sentineld %.0f us, monit %.0f us, ratio %.2f (goal <= 0.50: %s)\n",
        sc, mc, (mc > 0 ? sc / mc : 0), (mc > 0 && sc / mc <= 0.5 ? "met" : "MISSED")
    printf "  sentineld RSS peak %.1f MB (goal <= 15 MB: %s)\n", h * 1024 / 1e6, (h * 1024 <= 15e6 ? "met" : "MISSED") }'
if [[ -n "${FLEET_KEEP:-}" ]]; then
    mkdir -p "$FLEET_KEEP"; cp -r "$work/sentineld.stderr" "$work/monit/monit.log" "$work/board0" "$work/board1" "$FLEET_KEEP/" 2>/dev/null || true
fi
