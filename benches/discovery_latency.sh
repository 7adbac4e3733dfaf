#!/usr/bin/env bash
# Discovery latency of sentineld: how long after a labelled container's `start` event its
# discovered probe has checked it (and said Up), without any reload.
# Usage: benches/discovery_latency.sh [STARTS]   (default 20; needs Docker)
#        PROFILE=debug uses target/debug (default release); NO_BUILD=1 uses the binaries as they are.
#
# sentineld runs with `[docker] discover = "labeled"` scoped (`only_label`) to this run's label,
# and no [[probe]]. STARTS times: `docker run -d --label sentinel.enable=true` a busybox
# `sleep 3600`, wait until its probe is `up`, `docker rm -f` it, wait until the probe is gone.
# Then the journal is read back and, per start, these are computed:
#   start event -> up   container_event(start) as journaled to the probe's first probe_transition
#                       (both stamped by sentineld: event received -> inspected -> probe started ->
#                       first check done)
#   docker run -> up    from just before `docker run` ran (this script's clock) to that transition:
#                       adds Docker's create and start
# Percentiles are nearest-rank (with 20 starts p99 is the largest value).
# Results go to docs/performance.md by hand, with the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
starts="${1:-20}"
[[ "$starts" =~ ^[0-9]+$ ]] && (( starts > 0 && starts <= 500 )) || { echo "STARTS must be 1..500" >&2; exit 2; }
profile="${PROFILE:-release}"
[[ "$profile" == release || "$profile" == debug ]] || { echo "PROFILE is release or debug" >&2; exit 2; }
image="sentinel-test/busybox:latest"
tag="bench-disc-$$"
scope="sentinel-bench.scope=$tag"

docker version >/dev/null 2>&1 || { echo "no Docker engine on /var/run/docker.sock" >&2; exit 2; }
bash tests/images/build-busybox.sh
if [[ "${NO_BUILD:-}" != 1 ]]; then
    flag=(); [[ "$profile" == release ]] && flag=(--release)
    cargo build "${flag[@]}" --quiet --bin sentineld --bin sentinelctl
fi

work="$(mktemp -d)"
# Private copies: another build in the shared target dir must not swap the binary mid-run.
cp "target/$profile/sentineld" "target/$profile/sentinelctl" "$work/"
pid=""
cleanup() {
    [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    docker ps -aq --filter "label=$scope" | xargs -r docker rm -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
sock="$work/sentinel.sock"
cat > "$work/sentineld.toml" <<EOF
[daemon]
state_dir = "$work/state"
socket = "$sock"

[http]
listen = "127.0.0.1:$port"

[docker]
discover = "labeled"
only_label = "$scope"
EOF

"$work/sentineld" --config "$work/sentineld.toml" --log-format text 2>"$work/stderr" &
pid=$!
ctl() { "$work/sentinelctl" --socket "$sock" "$@"; }
now_ms() { date +%s%3N; }
# The state of probe $1, or "none" while it is absent (or the daemon not answering yet).
probe_state() {
    ctl --json status 2>/dev/null | python3 -c '
import json, sys
try:
    p = next(p for p in json.load(sys.stdin)["probes"] if p["name"] == sys.argv[1])
    print(p["state"])
except Exception:
    print("none")' "$1"
}
# Wait (at most $2 seconds) until probe $1 is in state $3.
wait_state() {
    local deadline=$(( $(now_ms) + $2 * 1000 ))
    while (( $(now_ms) < deadline )); do
        kill -0 "$pid" 2>/dev/null || return 1
        [[ "$(probe_state "$1")" == "$3" ]] && return 0
        sleep 0.02
    done
    return 1
}

# The daemon follows the engine's events before the first start.
for _ in $(seq 300); do
    ctl --json events --kind docker_engine 2>/dev/null | grep -q '"connected":true' && break
    sleep 0.05
done
: > "$work/runs"
for ((i = 1; i <= starts; i++)); do
    name="$tag-$i"
    echo "$name $(now_ms)" >> "$work/runs"
    docker run -d --name "$name" --network none --label sentinel.enable=true --label "$scope" \
        "$image" sleep 3600 >/dev/null
    wait_state "$name" 10 up || { echo "start $i: not up within 10 s" >&2; cat "$work/stderr" >&2; exit 1; }
    docker rm -f "$name" >/dev/null
    wait_state "$name" 10 none || echo "start $i: probe still listed 10 s after rm" >&2
done
sleep 0.5

ctl --json events --kind container_event,probe_transition --limit 100000 > "$work/events.ndjson"
python3 - "$work/runs" "$work/events.ndjson" "$starts" <<'PY'
import json, math, sys
runs_file, events_file, starts = sys.argv[1:]
runs = [l.split() for l in open(runs_file) if l.strip()]
events = [json.loads(l) for l in open(events_file) if l.strip()]
event_up, run_up, missing = [], [], 0
for name, ran in runs:
    start = next((e for e in events if e["kind"] == "container_event"
                  and e.get("container") == name and e.get("action") == "start"), None)
    up = next((e for e in events if e["kind"] == "probe_transition"
               and e.get("probe") == name and e.get("to") == "up"), None)
    if start is None or up is None:
        missing += 1
        continue
    event_up.append(up["at"] - start["at"])
    run_up.append(up["at"] - int(ran))

def pct(values, p):
    values = sorted(values)
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]

print(f"starts: {len(runs)} of {starts} run, {missing} without both events")
for label, values in (("start event -> up", event_up), ("docker run -> up", run_up)):
    if values:
        print(f"{label:>18}: p50 {pct(values, 50)} ms, p99 {pct(values, 99)} ms, max {max(values)} ms")
within = sum(1 for v in event_up if v <= 1000)
print(f"within 1 s of the start event: {within} of {len(event_up)}")
PY
