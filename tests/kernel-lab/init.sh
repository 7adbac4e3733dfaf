#!/bin/sh
# PID 1 of the kernel lab VM (busybox sh). Builds two namespaces joined by a veth pair and a
# cgroup v2 child, starts sentineld, and checks its netem and cgroup experiments by measuring
# (ping) and by reading the kernel (tc show, cgroupfs). Faults are applied only through
# `sentinelctl chaos start/stop`; tc and cat only read. Ends with a summary line and poweroff.
export PATH=/bin:/sbin:/usr/local/bin
/bin/busybox --install -s /bin
# Debian's busybox has its own ip/tc/ping applets: the real ones are called by absolute path.
IP=/usr/local/bin/ip
TC=/usr/local/bin/tc
PING=/usr/local/bin/ping
CTL="/usr/local/bin/sentinelctl --socket /run/sentinel.sock"
CG=/sys/fs/cgroup
PASSED=0
FAILED=0

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 $CG
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

finish() {
    echo "kernel-lab: $PASSED passed, $FAILED failed"
    sync
    poweroff -f
    sleep 5
    exit 1
}

# check NAME VERDICT FIGURES
check() {
    echo "kernel-lab: $1: $2 ($3)"
    if [ "$2" = ok ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}

# verdict AWK_CONDITION [name=value ...]: "ok" if the condition holds
verdict() {
    condition="$1"
    shift
    awk "$@" "BEGIN { print ($condition) ? \"ok\" : \"FAIL\" }" </dev/null
}

# ping_from_a COUNT INTERVAL [TO]: sets SENT, RECEIVED, LOSS (percent, 2 decimals), AVG, MDEV (ms)
ping_from_a() {
    $IP netns exec a $PING -n -q -c "$1" -i "$2" -W 1 "${3:-10.254.0.2}" >/tmp/ping.out 2>&1
    SENT=$(awk '/packets transmitted/ { print $1 }' /tmp/ping.out)
    RECEIVED=$(awk '/packets transmitted/ { print $4 }' /tmp/ping.out)
    AVG=$(awk -F/ '/^rtt/ { print $5 }' /tmp/ping.out)
    MDEV=$(awk -F/ '/^rtt/ { split($7, field, " "); print field[1] }' /tmp/ping.out)
    LOSS=$(awk -v s="${SENT:-0}" -v r="${RECEIVED:-0}" 'BEGIN { if (s > 0) printf "%.2f", 100 * (s - r) / s; else print "nan" }')
    [ -n "$AVG" ] || AVG=nan
}

# chaos_start PROFILE: sentinelctl's answer must say the experiment is active
chaos_start() {
    if $CTL --json chaos start "$1" >/tmp/start.out 2>&1 && grep -Eq '"state": ?"active"' /tmp/start.out; then
        return 0
    fi
    check "start $1" FAIL "$(tr '\n' ' ' </tmp/start.out | cut -c1-300)"
    return 1
}

chaos_stop() {
    $CTL chaos stop --all >/tmp/stop.out 2>&1 || check "stop after $1" FAIL "$(tr '\n' ' ' </tmp/stop.out | cut -c1-300)"
}

root_qdisc() {
    $TC -n a qdisc show dev veth-a | head -n1
}

echo
echo "kernel-lab: kernel $(uname -r), $(nproc) cpu"
for module in $(cat /modules/order); do
    insmod "/modules/$module.ko" || check "insmod $module" FAIL "insmod failed"
done

$IP link set lo up
$IP netns add a
$IP netns add b
$IP link add veth-a netns a type veth peer name veth-b netns b
$IP -n a addr add 10.254.0.1/24 dev veth-a
$IP -n b addr add 10.254.0.2/24 dev veth-b
$IP -n b addr add 10.254.0.3/24 dev veth-b
for ns in a b; do
    $IP -n $ns link set lo up
done
$IP -n a link set veth-a up
$IP -n b link set veth-b up
echo "+cpu +memory" >$CG/cgroup.subtree_control
mkdir $CG/lab

mkdir -p /var/lib/sentineld
sentineld --config /lab/sentineld.toml run >/tmp/sentineld.log 2>&1 &
daemon=$!
for _ in $(seq 1 120); do
    $CTL status >/tmp/status.out 2>&1 && break
    kill -0 $daemon 2>/dev/null || break
    sleep 0.5
done
if ! $CTL status >/tmp/status.out 2>&1; then
    check "sentineld up" FAIL "$(tail -n 20 /tmp/sentineld.log | tr '\n' ' ' | cut -c1-600)"
    finish
fi
capability=$(grep -o 'netem: [a-z]*' /tmp/status.out | head -n1)
check "netem capability" "$(verdict 'c == "netem: available"' -v c="$capability")" "status: $capability"

# Let the veth pair settle (first packets after link-up are slower under emulation).
ping_from_a 5 0.1
ping_from_a 20 0.05
BASELINE=$AVG
check "baseline rtt" "$(verdict 'r == 20 && a < 20' -v r="$RECEIVED" -v a="$AVG")" "avg ${AVG} ms, $RECEIVED/$SENT replies"

if chaos_start delay; then
    qdisc=$(root_qdisc)
    check "delay read back by tc" "$(verdict 'q ~ /netem 5e1d: root/ && q ~ /delay 100ms/' -v q="$qdisc")" "$qdisc"
    ping_from_a 20 0.05
    check "delay 100ms" "$(verdict 'r == 20 && d - b >= 95 && d - b <= 105' -v r="$RECEIVED" -v d="$AVG" -v b="$BASELINE")" \
        "avg ${AVG} ms, baseline ${BASELINE} ms, added $(awk -v d="$AVG" -v b="$BASELINE" 'BEGIN { printf "%.2f", d - b }') ms, want 100 +-5"
    chaos_stop delay
fi

# The normal distribution table (generated in Rust) reaches the kernel: RTTs spread by ~10 ms.
if chaos_start jitter; then
    qdisc=$(root_qdisc)
    check "jitter read back by tc" "$(verdict 'q ~ /netem 5e1d: root/ && q ~ /delay 100ms +10ms/' -v q="$qdisc")" "$qdisc"
    ping_from_a 100 0.02
    check "jitter 10ms normal" "$(verdict 'r == 100 && a - b >= 95 && a - b <= 105 && m >= 7 && m <= 13' -v r="$RECEIVED" -v a="$AVG" -v b="$BASELINE" -v m="$MDEV")" \
        "avg ${AVG} ms, mdev ${MDEV} ms, $RECEIVED/$SENT replies, want 100 +-5 and mdev 10 +-3"
    chaos_stop jitter
fi

if chaos_start loss; then
    qdisc=$(root_qdisc)
    check "loss read back by tc" "$(verdict 'q ~ /netem 5e1d: root/ && q ~ /loss 30%/' -v q="$qdisc")" "$qdisc"
    ping_from_a 1000 0.005
    check "loss 30%" "$(verdict 's == 1000 && l >= 25 && l <= 35' -v s="$SENT" -v l="$LOSS")" \
        "${LOSS}% lost, $RECEIVED/$SENT replies, want 30 +-5"
    chaos_stop loss
fi

qdisc=$(root_qdisc)
check "rollback read back by tc" "$(verdict 'q !~ /5e1d:/ && q ~ /noqueue/' -v q="$qdisc")" "$qdisc"
ping_from_a 20 0.05
check "baseline after rollback" "$(verdict 'r == 20 && a < b + 5' -v r="$RECEIVED" -v a="$AVG" -v b="$BASELINE")" \
    "avg ${AVG} ms, baseline ${BASELINE} ms, $RECEIVED/$SENT replies"

# Scoped netem (htb + u32): 10.254.0.2 delayed, 10.254.0.3 on the same link not.
section_started=$(cut -d' ' -f1 /proc/uptime)
if chaos_start scoped-delay; then
    tree="$($TC -n a qdisc show dev veth-a | tr '\n' ' ')"
    check "scoped delay read back by tc" "$(verdict 't ~ /htb 5e1d: root/ && t ~ /netem 5e1e: parent 5e1d:1/ && t ~ /delay 100ms/' -v t="$tree")" "$tree"
    ping_from_a 10 0.05 10.254.0.2
    scoped="$AVG"
    scoped_received="$RECEIVED"
    ping_from_a 10 0.05 10.254.0.3
    check "scoped delay 100ms to .2 only" "$(verdict 'r == 10 && o == 10 && d - b >= 95 && d - b <= 105 && a < b + 5' -v r="$scoped_received" -v o="$RECEIVED" -v d="$scoped" -v a="$AVG" -v b="$BASELINE")" \
        "to .2 avg ${scoped} ms, to .3 avg ${AVG} ms, baseline ${BASELINE} ms, want +100 +-5 and +0 (<5)"
    chaos_stop scoped-delay
    tree="$($TC -n a qdisc show dev veth-a; $TC -n a filter show dev veth-a)"
    check "scoped rollback read back by tc" "$(verdict 't !~ /5e1d:|htb|u32/' -v t="$tree")" "$(echo "$tree" | tr '\n' ' ')"
fi

# Ingress netem through an ifb: the replies a receives are delayed; the ifb goes at rollback.
if chaos_start ingress-delay; then
    links="$($IP -n a -o link show | tr '\n' ' ')"
    qdiscs="$($TC -n a qdisc show | tr '\n' ' ')"
    check "ingress delay read back by ip/tc" "$(verdict 'l ~ /sntl5e1d-/ && q ~ /netem 5e1d: dev sntl5e1d-[0-9]+ root/ && q ~ /ingress ffff: dev veth-a/' -v l="$links" -v q="$qdiscs")" "$qdiscs"
    ping_from_a 10 0.05
    check "ingress delay 100ms" "$(verdict 'r == 10 && d - b >= 95 && d - b <= 105' -v r="$RECEIVED" -v d="$AVG" -v b="$BASELINE")" \
        "avg ${AVG} ms, baseline ${BASELINE} ms, want +100 +-5"
    chaos_stop ingress-delay
    after="$($IP -n a -o link show; $TC -n a qdisc show)"
    check "ingress rollback read back by ip/tc" "$(verdict 't !~ /sntl|ingress|5e1d:/' -v t="$after")" "$(echo "$after" | tr '\n' ' ')"
fi

echo "kernel-lab: scoped and ingress netem checks took $(awk -v s="$section_started" '{ printf "%.1f", $1 - s }' /proc/uptime) s of guest time"

CPU_BEFORE=$(cat $CG/lab/cpu.max)
MEMORY_BEFORE=$(cat $CG/lab/memory.max)
if chaos_start limits; then
    cpu=$(cat $CG/lab/cpu.max)
    memory=$(cat $CG/lab/memory.max)
    check "cpu.max applied" "$(verdict 'v == "50000 100000"' -v v="$cpu")" "cpu.max '$cpu', was '$CPU_BEFORE'"
    check "memory.max applied" "$(verdict 'v == "67108864"' -v v="$memory")" "memory.max '$memory', was '$MEMORY_BEFORE'"
    # the quota bites: a busy loop in the cgroup gets throttled
    sh -c "echo \$\$ >$CG/lab/cgroup.procs; while :; do :; done" &
    busy=$!
    sleep 1
    kill $busy
    wait $busy 2>/dev/null
    throttled=$(awk '/^nr_throttled/ { print $2 }' $CG/lab/cpu.stat)
    check "cpu.max throttles a busy loop" "$(verdict 't > 0' -v t="$throttled")" "nr_throttled $throttled"
    chaos_stop limits
    cpu=$(cat $CG/lab/cpu.max)
    memory=$(cat $CG/lab/memory.max)
    check "cpu.max restored" "$(verdict 'v == w' -v v="$cpu" -v w="$CPU_BEFORE")" "cpu.max '$cpu', originally '$CPU_BEFORE'"
    check "memory.max restored" "$(verdict 'v == w' -v v="$memory" -v w="$MEMORY_BEFORE")" "memory.max '$memory', originally '$MEMORY_BEFORE'"
fi

# benches/chaos_apply.rs when run.sh was given it; the real tc comes first on its PATH
if [ -x /usr/local/bin/chaos-bench ]; then
    PATH=/usr/local/bin:$PATH chaos-bench netem a veth-a 2>&1 | sed 's/^/kernel-lab bench: /'
    chaos-bench cgroup $CG /lab 2>&1 | sed 's/^/kernel-lab bench: /'
fi

if [ "$FAILED" -gt 0 ]; then
    echo "kernel-lab: sentineld log (last 30 lines):"
    tail -n 30 /tmp/sentineld.log | sed 's/^/    /'
fi
$CTL chaos stop --all >/dev/null 2>&1
finish
