#!/usr/bin/env bash
# Heal latency of sentineld: how fast a Docker container death turns into a restart request, and
# how long until the probe is Up again.
# Usage: benches/heal_latency.sh [KILLS]   (default 50; needs Docker, builds a release build;
#        NO_BUILD=1 uses target/release as it is)
#
# One docker probe (fail_after = 1, interval 30 s, so only the event path can be fast) on a
# container `sentinel-bench-heal` running `sleep 3600`, healed by docker_restart. KILLS times: wait
# for the probe to be `up`, `docker kill` the container, wait for the probe to count a recovery.
# The restart budget is max_attempts = 100 per 1 m (100 is the most the config accepts).
# Then the journal is read back and, per kill, these are computed:
#   die -> heal_started   container_event(die) as journaled to heal_started: "container death ->
#                         restart request sent" inside sentineld (both stamped by sentineld)
#   kill -> heal_started  from just before `docker kill` ran (this script's clock) to heal_started:
#                         adds Docker's own kill + event delivery
#   detect/act/recover    time_to_detect_ms, time_to_act_ms, time_to_recover_ms of incident_closed
# Percentiles are nearest-rank (with 50 kills p99 is the 50th value, i.e. the max).
# Results go to docs/performance.md by hand, with the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-50}"
[[ "$kills" =~ ^[0-9]+$ ]] && (( kills > 0 && kills <= 1000 )) || { echo "KILLS must be 1..1000" >&2; exit 2; }
container="sentinel-bench-heal"
image="sentinel-test/busybox:latest"

docker version >/dev/null 2>&1 || { echo "no Docker engine on /var/run/docker.sock" >&2; exit 2; }
bash tests/images/build-busybox.sh
[[ "${NO_BUILD:-}" == 1 ]] || cargo build --release --quiet --bin sentineld --bin sentinelctl

work="$(mktemp -d)"
# Private copies: another build in the shared target dir must not swap the binary mid-run.
cp target/release/sentineld target/release/sentinelctl "$work/"
pid=""
cleanup() {
    [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    docker rm -f "$container" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

docker rm -f "$container" >/dev/null 2>&1 || true
docker run -d --name "$container" --network none "$image" sleep 3600 >/dev/null

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
sock="$work/sentinel.sock"
cat > "$work/sentineld.toml" <<EOF
[daemon]
state_dir = "$work/state"
socket = "$sock"

[http]
listen = "127.0.0.1:$port"

[[probe]]
name = "heal"
kind = "docker"
container = "$container"
interval = "30s"
timeout = "5s"
fail_after = 1
recover_after = 1
heal = { action = "docker_restart", max_attempts = 100, window = "1m", backoff = "100ms", verify_within = "10s", stop_timeout = "1s" }
EOF

"$work/sentineld" --config "$work/sentineld.toml" --log-format text 2>"$work/stderr" &
pid=$!
ctl() { "$work/sentinelctl" --socket "$sock" "$@"; }
now_ms() { date +%s%3N; }
# "STATE RECOVERIES" of the probe, or "none 0" while the daemon is not answering yet.
probe_state() {
    ctl --json status 2>/dev/null | python3 -c '
import json, sys
try:
    p = next(p for p in json.load(sys.stdin)["probes"] if p["name"] == "heal")
    print(p["state"], p["recoveries_total"])
except Exception:
    print("none 0")'
}
# Wait (at most $1 seconds) until the probe is up; with $2, also until recoveries_total > $2.
wait_up() {
    local deadline=$(( $(now_ms) + $1 * 1000 )) state recoveries
    while (( $(now_ms) < deadline )); do
        kill -0 "$pid" 2>/dev/null || return 1
        read -r state recoveries < <(probe_state)
        if [[ "$state" == up ]] && (( recoveries > ${2:--1} )); then
            echo "$recoveries"
            return 0
        fi
        sleep 0.05
    done
    return 1
}

recoveries="$(wait_up 30)" || { echo "probe never came up; sentineld stderr:" >&2; cat "$work/stderr" >&2; exit 1; }
: > "$work/kills"
failed_waits=0
bench_start="$(date +%s)"
for ((i = 1; i <= kills; i++)); do
    now_ms >> "$work/kills"
    docker kill "$container" >/dev/null
    if next="$(wait_up 30 "$recoveries")"; then
        recoveries="$next"
    else
        failed_waits=$((failed_waits + 1))
        echo "kill $i: probe not up again within 30 s" >&2
        (( failed_waits >= 3 )) && { echo "giving up after 3 failed waits" >&2; break; }
        wait_up 30 >/dev/null || { echo "probe stuck, stopping" >&2; break; }
        recoveries="$(probe_state | awk '{print $2}')"
    fi
    sleep 0.2 # let the verification and incident_closed land before the next kill
done
bench_seconds=$(( $(date +%s) - bench_start ))
sleep 1

ctl --json events --kind container_event,heal_started,incident_closed --limit 100000 > "$work/events.ndjson"
heal_attempts="$(ctl --json status | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("heals", [])))')"

python3 - "$work/kills" "$work/events.ndjson" "$container" "$kills" "$bench_seconds" <<'PY'
import json, math, sys
kills_file, events_file, container, requested, seconds = sys.argv[1:]
kills = [int(l) for l in open(kills_file) if l.strip()]
events = [json.loads(l) for l in open(events_file) if l.strip()]
events.sort(key=lambda e: (e["at"], e.get("id", 0)))
dies = [e for e in events if e["kind"] == "container_event" and e.get("container") == container and e.get("action") == "die"]
heals = [e for e in events if e["kind"] == "heal_started" and e.get("probe") == "heal"]
closes = [e for e in events if e["kind"] == "incident_closed" and e.get("probe") == "heal"]

def first(seq, lo, hi):
    return next((e for e in seq if lo <= e["at"] < hi), None)

cols = {"die -> heal_started": [], "kill -> heal_started": [], "time_to_detect": [],
        "time_to_act": [], "time_to_recover": []}
missing = {"die": 0, "heal_started": 0, "incident_closed": 0}
for i, k in enumerate(kills):
    end = kills[i + 1] if i + 1 < len(kills) else float("inf")
    die = first(dies, k - 5, end)   # 5 ms of slack: two clocks read a few ms apart
    heal = first(heals, die["at"] if die else k, end)
    close = first(closes, heal["at"] if heal else k, end)
    if die is None: missing["die"] += 1
    if heal is None: missing["heal_started"] += 1
    if close is None: missing["incident_closed"] += 1
    if die and heal: cols["die -> heal_started"].append(heal["at"] - die["at"])
    if heal: cols["kill -> heal_started"].append(heal["at"] - k)
    if close:
        for key in ("time_to_detect", "time_to_act", "time_to_recover"):
            if close.get(key + "_ms") is not None:
                cols[key].append(close[key + "_ms"])

def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]

print(f"sentineld heal latency ({len(kills)} of {requested} kills done in {seconds} s; "
      f"{len(dies)} die events, {len(heals)} heal_started, {len(closes)} incident_closed)")
print(f"  {'ms':<24}{'n':>5}{'p50':>8}{'p99':>8}{'max':>8}{'min':>8}")
for key, values in cols.items():
    if values:
        print(f"  {key:<24}{len(values):>5}{pct(values, 50):>8}{pct(values, 99):>8}{max(values):>8}{min(values):>8}")
    else:
        print(f"  {key:<24}{0:>5}{'-':>8}{'-':>8}{'-':>8}{'-':>8}")
if any(missing.values()):
    print("  kills without: " + ", ".join(f"{k} {v}" for k, v in missing.items() if v))
d = cols["die -> heal_started"]
if d:
    verdict = "met" if pct(d, 99) <= 200 else "MISSED"
    print(f"  target p99(die -> heal_started) <= 200 ms: {verdict} ({pct(d, 99)} ms)")
PY
echo "  heal attempts listed by status: $heal_attempts"
