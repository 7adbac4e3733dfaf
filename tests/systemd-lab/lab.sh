#!/bin/sh
# The systemd lab's checks, run by sentinel-lab.service inside the VM where systemd is PID 1.
# sentineld watches sentinel-demo.service over D-Bus; the unit's main process is killed with
# SIGKILL (Restart=no, so systemd leaves it failed) and sentineld must see it Down and bring it
# back with systemd_restart. systemctl here only reads (MainPID) and powers off at the end.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
CTL="sentinelctl --socket /run/sentinel.sock"
PASSED=0
FAILED=0

finish() {
    echo "systemd-lab: $PASSED passed, $FAILED failed"
    sync
    systemctl poweroff --force --force
    sleep 30
}

# check NAME VERDICT FIGURES
check() {
    echo "systemd-lab: $1: $2 ($3)"
    if [ "$2" = ok ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_for SECONDS COMMAND...: 0 once the command succeeds, 1 if it never did
wait_for() {
    limit=$1
    shift
    start=$(now)
    while :; do
        "$@" && return 0
        [ "$(awk -v a="$start" -v b="$(now)" -v l="$limit" 'BEGIN { print (b - a > l) }')" = 1 ] && return 1
        sleep 0.2
    done
}

probe_state() {
    $CTL --json status 2>/dev/null | tr -d ' \n' | grep -o '"name":"demo"[^}]*"state":"[a-z]*"' |
        sed 's/.*"state":"//; s/"$//'
}
probe_is() { [ "$(probe_state)" = "$1" ]; }
events() { $CTL --json events --limit 1000 2>/dev/null | tr -d ' \n'; }
went_down_failed() { events | grep -q '"probe":"demo","from":"[a-z]*","to":"down","reason":"unit_failed"'; }
healed() { events | grep -q '"probe":"demo","action":"systemdrestartsentinel-demo.service","ok":true'; }
main_pid() { systemctl show -p MainPID --value sentinel-demo.service; }
fail_with_log() {
    check "$1" FAIL "$2; sentineld log: $(tail -n 15 /tmp/sentineld.log | tr '\n' ' ' | cut -c1-900)"
    finish
}

echo
echo "systemd-lab: kernel $(uname -r), PID 1 $(cat /proc/1/comm), $(systemctl --version | head -n1)"
[ "$(cat /proc/1/comm)" = systemd ] && check "systemd is PID 1" ok "$(cat /proc/1/comm)" ||
    check "systemd is PID 1" FAIL "PID 1 is $(cat /proc/1/comm)"

mkdir -p /var/lib/sentineld
booted=$(now)
sentineld --config /lab/sentineld.toml run >/tmp/sentineld.log 2>&1 &
daemon=$!
wait_for 150 probe_is up || fail_with_log "probe up" "state $(probe_state) after 150 s"
check "probe up" ok "Up $(since "$booted") s after sentineld started; unit $(systemctl is-active sentinel-demo.service)"

before=$(main_pid)
killed=$(now)
kill -KILL "$before"
wait_for 60 went_down_failed || fail_with_log "down unit_failed" "no probe_transition to down with reason unit_failed; state $(probe_state)"
check "down unit_failed" ok "Down (unit_failed) $(since "$killed") s after SIGKILL of MainPID $before"

wait_for 60 healed || fail_with_log "systemd_restart" "no heal_finished ok for systemd restart; events: $(events | tail -c 600)"
check "systemd_restart" ok "heal_finished ok $(since "$killed") s after the kill"

wait_for 60 probe_is up || fail_with_log "probe up again" "state $(probe_state)"
after=$(main_pid)
unit=$(systemctl is-active sentinel-demo.service)
if [ "$unit" = active ] && [ "$after" != 0 ] && [ "$after" != "$before" ]; then
    check "probe up again" ok "Up $(since "$killed") s after the kill; unit $unit, MainPID $before -> $after"
else
    check "probe up again" FAIL "unit $unit, MainPID $before -> $after"
fi

# Unit limits through SetUnitProperties(runtime): profile unit-limits on sentinel-limits.service
# (memory_limit max 64MiB, cpu_quota 0.5). systemctl only reads here, and restarts the unit.
LIMITED=sentinel-limits.service
APPLIED="MemoryMax=67108864 CPUQuotaPerSecUSec=500ms memory.max=67108864"
cg=/sys/fs/cgroup$(systemctl show -p ControlGroup --value $LIMITED)
# one systemctl call (each costs most of a second under emulation)
limits() {
    shown=$(systemctl show -p MemoryMax -p CPUQuotaPerSecUSec $LIMITED)
    echo "MemoryMax=$(echo "$shown" | sed -n 's/^MemoryMax=//p')" \
        "CPUQuotaPerSecUSec=$(echo "$shown" | sed -n 's/^CPUQuotaPerSecUSec=//p')" \
        "memory.max=$(cat "$cg/memory.max" 2>/dev/null)"
}
cpu_max() { cat "$cg/cpu.max" 2>/dev/null || echo none; }
limits_are() { [ "$(limits)" = "$1" ]; }
limited_pid() { systemctl show -p MainPID --value $LIMITED; }
start_limits() { $CTL --json chaos start unit-limits 2>>/tmp/sentineld.log | tr -d ' \n' | grep -o '"id":"[^"]*"' | head -n1 | sed 's/"id":"//; s/"$//'; }
experiment_state() { $CTL --json chaos show "$1" 2>/dev/null | tr -d ' \n' | grep -o '"state":"[a-z_]*"' | head -n1 | sed 's/"state":"//; s/"$//'; }

limits_started=$(now)
original=$(limits)
step=$(now)
id=$(start_limits)
[ -n "$id" ] || fail_with_log "unit limits applied" "chaos start unit-limits answered no id; before: $original"
if limits_are "$APPLIED" && [ "$(cpu_max)" = "50000 100000" ]; then
    check "unit limits applied" ok "$id in $(since "$step") s: $(limits) cpu.max=$(cpu_max); before: $original"
else
    check "unit limits applied" FAIL "$id: $(limits) cpu.max=$(cpu_max); want $APPLIED cpu.max=50000 100000"
fi

pid_before=$(limited_pid)
step=$(now)
systemctl restart $LIMITED
pid_after=$(limited_pid)
if limits_are "$APPLIED" && [ "$(cpu_max)" = "50000 100000" ] && [ "$pid_after" != "$pid_before" ]; then
    check "unit limits survive a restart" ok "restarted in $(since "$step") s, MainPID $pid_before -> $pid_after: $(limits) cpu.max=$(cpu_max)"
else
    check "unit limits survive a restart" FAIL "MainPID $pid_before -> $pid_after: $(limits) cpu.max=$(cpu_max); want $APPLIED"
fi

step=$(now)
$CTL chaos stop "$id" >/dev/null 2>&1
state=$(experiment_state "$id")
if [ "$state" = rolled_back ] && limits_are "$original"; then
    check "unit limits rolled back" ok "$id $state in $(since "$step") s: $(limits) cpu.max=$(cpu_max); drop-ins $(systemctl show -p DropInPaths --value $LIMITED)"
else
    check "unit limits rolled back" FAIL "$id $state: $(limits); want $original"
fi

# kill -9 mid-experiment: the limits stay (systemd holds them), the next start rolls them back.
id=$(start_limits)
limits_are "$APPLIED" || fail_with_log "unit limits after kill -9" "$id did not apply: $(limits)"
kill -KILL $daemon
sleep 1
held=$(limits)
killed=$(now)
sentineld --config /lab/sentineld.toml run >>/tmp/sentineld.log 2>&1 &
wait_for 120 limits_are "$original" || fail_with_log "unit limits after kill -9" "not restored after restart: $(limits); want $original"
restored=$(since "$killed")
wait_for 60 sh -c "$CTL --json chaos show $id 2>/dev/null | grep -q rolled_back"
state=$(experiment_state "$id")
if [ "$held" = "$APPLIED" ] && [ "$state" = rolled_back ]; then
    check "unit limits after kill -9" ok "held after kill -9 of pid $daemon ($held); $id $state, restored ${restored} s after the restart: $(limits)"
else
    check "unit limits after kill -9" FAIL "held: $held; $id $state; now $(limits)"
fi
echo "systemd-lab: unit limit checks took $(since "$limits_started") s"
finish
