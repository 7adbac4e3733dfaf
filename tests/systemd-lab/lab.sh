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
finish
