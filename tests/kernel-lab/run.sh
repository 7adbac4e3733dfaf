#!/usr/bin/env bash
# Kernel lab: boots a real Debian kernel under qemu (software emulation) with an initramfs that
# holds sentineld, sentinelctl, iproute2, ping and busybox, and checks netem delay/loss and
# cgroup v2 limits end to end, driving sentineld only through `sentinelctl chaos`.
#
# Usage (root, Debian 12): tests/kernel-lab/run.sh [SENTINELD] [SENTINELCTL] [CHAOS_BENCH]
#   defaults: target/release/sentineld, target/release/sentinelctl, no bench.
# Needs: qemu-system-x86 cpio busybox-static iproute2 iputils-ping (apt).
# The kernel package and the extracted kernel are cached under target/kernel-lab/.
# Prints the guest's `kernel-lab: <check>: ok|FAIL (...)` lines and a closing
# `kernel-lab: N passed, M failed`; exits nonzero if a check failed or the VM did not finish.
set -euo pipefail

cd "$(dirname "$0")/../.."
LAB_DIR="$PWD/tests/kernel-lab"
CACHE="$PWD/target/kernel-lab"
SENTINELD="$(realpath "${1:-target/release/sentineld}")"
SENTINELCTL="$(realpath "${2:-target/release/sentinelctl}")"
CHAOS_BENCH="${3:-}"
[ -n "$CHAOS_BENCH" ] && CHAOS_BENCH="$(realpath "$CHAOS_BENCH")"
TIMEOUT_SECS="${KERNEL_LAB_TIMEOUT:-240}"

fail_setup() {
    echo "kernel-lab: setup: FAIL ($*)"
    echo "kernel-lab: 0 passed, 1 failed"
    exit 1
}

for tool in qemu-system-x86_64 cpio gzip busybox apt-get dpkg-deb ldd; do
    command -v "$tool" >/dev/null || fail_setup "$tool not found; apt-get install qemu-system-x86 cpio busybox-static iproute2 iputils-ping"
done
for binary in "$SENTINELD" "$SENTINELCTL" /usr/bin/ping /usr/sbin/tc /usr/bin/ip; do
    [ -x "$binary" ] || fail_setup "$binary is missing"
done

# The kernel: the package linux-image-amd64 currently depends on, downloaded once.
mkdir -p "$CACHE"
. "$LAB_DIR/kernel.sh"
fetch_kernel "$CACHE"
VMLINUZ="$(ls "$CACHE"/kernel/boot/vmlinuz-* | head -n1)"
MODULES="$(ls -d "$CACHE"/kernel/lib/modules/* | head -n1)"

# The initramfs, rebuilt every run (the binaries change; it takes a second).
ROOT="$CACHE/rootfs"
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,usr/local/bin,modules,proc,sys,dev,run,tmp,etc,var/lib,lab}
ln -s ../run "$ROOT/var/run"
cp "$(command -v busybox)" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
binaries=("$SENTINELD" "$SENTINELCTL" /usr/bin/ping /usr/sbin/tc /usr/bin/ip)
[ -n "$CHAOS_BENCH" ] && binaries+=("$CHAOS_BENCH")
for binary in "${binaries[@]}"; do
    install -m 0755 "$binary" "$ROOT/usr/local/bin/$(basename "$binary")"
    # every library ldd lists, and the loader (the line without "=>"), at their own paths
    for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }'); do
        mkdir -p "$ROOT$(dirname "$lib")"
        cp -L "$lib" "$ROOT$lib"
    done
done
[ -n "$CHAOS_BENCH" ] && mv "$ROOT/usr/local/bin/$(basename "$CHAOS_BENCH")" "$ROOT/usr/local/bin/chaos-bench"

# Modules and their dependencies (the .modinfo `depends=` field); `order` lists dependencies
# before their dependents, which is the order init loads them in.
add_module() {
    local name="$1" file dep
    [ -f "$ROOT/modules/$name.ko" ] && return
    file="$(find "$MODULES" -name "$name.ko" -o -name "$name.ko.xz" | head -n1)"
    [ -n "$file" ] || fail_setup "module $name not in the kernel package"
    case "$file" in
        *.xz) xz -dc "$file" >"$ROOT/modules/$name.ko" ;;
        *) cp "$file" "$ROOT/modules/$name.ko" ;;
    esac
    for dep in $(tr '\0' '\n' <"$ROOT/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "$dep"
    done
    echo "$name" >>"$ROOT/modules/order"
}
add_module veth
add_module sch_netem
# scoped and ingress faults: htb + u32, and the ifb device fed by an ingress mirred redirect
for module in sch_htb cls_u32 sch_ingress act_mirred ifb; do add_module "$module"; done

install -m 0755 "$LAB_DIR/init.sh" "$ROOT/init"
cp "$LAB_DIR/sentineld.toml" "$ROOT/lab/sentineld.toml"
INITRD="$CACHE/initrd.gz"
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1 >"$INITRD")

# Boot. The console is the guest's only output; -nic none: no network to the outside at all.
CONSOLE="$CACHE/console.log"
set +e
timeout --foreground "$TIMEOUT_SECS" qemu-system-x86_64 -accel tcg -m 768 -smp 1 -nographic \
    -no-reboot -nic none -kernel "$VMLINUZ" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" </dev/null 2>&1 | tr -d '\r' >"$CONSOLE"
qemu_status=${PIPESTATUS[0]}
set -e

grep -E '^kernel-lab' "$CONSOLE" || true
summary="$(grep -E '^kernel-lab: [0-9]+ passed, [0-9]+ failed' "$CONSOLE" | tail -n1 || true)"
if [ -z "$summary" ]; then
    echo "kernel-lab: vm: FAIL (no summary; qemu exit $qemu_status; console in $CONSOLE, last lines follow)"
    tail -n 30 "$CONSOLE" | sed 's/^/    /'
    echo "kernel-lab: 0 passed, 1 failed"
    exit 1
fi
failed="$(echo "$summary" | awk '{ print $4 }')"
[ "$failed" = 0 ] || { echo "(console: $CONSOLE)"; exit 1; }
