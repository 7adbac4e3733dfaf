#!/usr/bin/env bash
# systemd lab: boots the kernel lab's Debian kernel under qemu (software emulation) into a
# Debian 12 userland with systemd as PID 1 and a system bus, and checks sentineld's
# systemd_unit probe and systemd_restart heal end to end (tests/systemd-lab/lab.sh).
#
# Usage (root, Debian 12): tests/systemd-lab/run.sh [--prepare] [SENTINELD] [SENTINELCTL]
#   defaults: target/release/sentineld, target/release/sentinelctl.
# Needs: qemu-system-x86 cpio debootstrap (apt) and the Debian mirror apt is configured with.
# The userland (debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm) is
# built once into target/systemd-lab/ and kept there as one cpio archive; each run appends a
# small archive with the binaries and the lab's files. The whole archive is the initramfs:
# systemd runs from it as PID 1 (no disk image, no kernel modules).
# Prints the guest's `systemd-lab: <check>: ok|FAIL (...)` lines and a closing
# `systemd-lab: N passed, M failed`; exits nonzero if a check failed or the VM did not finish.
set -euo pipefail

cd "$(dirname "$0")/../.."
LAB_DIR="$PWD/tests/systemd-lab"
CACHE="$PWD/target/systemd-lab"
# --prepare: only download the kernel and build the cached userland (tests/setup-and-run.sh does
# that in the background early), no binaries needed.
PREPARE_ONLY=false
if [ "${1:-}" = --prepare ]; then
    PREPARE_ONLY=true
    shift
fi
SENTINELD="$(realpath -m "${1:-target/release/sentineld}")"
SENTINELCTL="$(realpath -m "${2:-target/release/sentinelctl}")"
TIMEOUT_SECS="${SYSTEMD_LAB_TIMEOUT:-300}"
SUITE=bookworm

fail_setup() {
    echo "systemd-lab: setup: FAIL ($*)"
    echo "systemd-lab: 0 passed, 1 failed"
    exit 1
}

for tool in qemu-system-x86_64 cpio debootstrap apt-get dpkg-deb ldd strip; do
    command -v "$tool" >/dev/null || fail_setup "$tool not found; apt-get install qemu-system-x86 cpio debootstrap"
done
if ! $PREPARE_ONLY; then
    for binary in "$SENTINELD" "$SENTINELCTL"; do
        [ -x "$binary" ] || fail_setup "$binary is missing"
    done
fi

. tests/kernel-lab/kernel.sh
fetch_kernel "$PWD/target/kernel-lab"
VMLINUZ="$(ls target/kernel-lab/kernel/boot/vmlinuz-* | head -n1)"

# The userland, built once: a minimal Debian with systemd and dbus, trimmed of documentation,
# with everything the lab does not need masked so the boot stays short under emulation.
BASE="$CACHE/base.cpio"
if [ ! -f "$BASE" ]; then
    started=$SECONDS
    mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
    [ -n "$mirror" ] || fail_setup "no Debian mirror configured for apt"
    rm -rf "$CACHE/rootfs.tmp"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "$SUITE" "$CACHE/rootfs.tmp" "$mirror" \
        >"$CACHE/debootstrap.log" 2>&1 || fail_setup "debootstrap failed; see $CACHE/debootstrap.log"
    root="$CACHE/rootfs.tmp"
    rm -rf "$root"/usr/share/{doc,man,info,locale} "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
    units="$root/etc/systemd/system"
    for unit in getty.target serial-getty@ttyS0.service getty@tty1.service console-getty.service \
        apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        dpkg-db-backup.timer systemd-logind.service systemd-timesyncd.service \
        systemd-networkd.service systemd-resolved.service systemd-firstboot.service \
        systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount; do
        ln -sf /dev/null "$units/$unit"
    done
    echo sentinel-lab >"$root/etc/hostname"
    : >"$root/etc/machine-id"
    (cd "$root" && find . >"$BASE.list" && cpio -o -H newc --quiet <"$BASE.list" >"$BASE.tmp")
    mv "$BASE.tmp" "$BASE"
    rm -rf "$root"
    echo "systemd-lab: built the userland in $((SECONDS - started)) s ($(du -m "$BASE" | cut -f1) MiB)"
fi

# The lab's files and binaries (with any library the userland lacks), rebuilt every run.
if $PREPARE_ONLY; then
    echo "systemd-lab: kernel and userland ready in $CACHE"
    exit 0
fi

LAB="$CACHE/lab"
rm -rf "$LAB"
mkdir -p "$LAB"/{usr/local/bin,lab,etc/systemd/system/multi-user.target.wants}
for binary in "$SENTINELD" "$SENTINELCTL"; do
    install -m 0755 "$binary" "$LAB/usr/local/bin/$(basename "$binary")"
    # a debug build is mostly debug info: without it the archive and the start stay small
    strip --strip-debug "$LAB/usr/local/bin/$(basename "$binary")"
    for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
        # merged /usr: /lib is a symlink in the userland; a directory of that name in the
        # appended archive would replace it, so libraries go under /usr
        case "$lib" in /usr/*) ;; *) lib="/usr$lib" ;; esac
        if ! grep -qx ".$lib" "$BASE.list"; then
            mkdir -p "$LAB$(dirname "$lib")"
            cp -L "${lib#/usr}" "$LAB$lib" 2>/dev/null || cp -L "$lib" "$LAB$lib"
        fi
    done
done
install -m 0755 "$LAB_DIR/lab.sh" "$LAB/lab/lab.sh"
cp "$LAB_DIR/sentineld.toml" "$LAB/lab/sentineld.toml"
cp "$LAB_DIR/sentinel-demo.service" "$LAB_DIR/sentinel-lab.service" "$LAB_DIR/sentinel-limits.service" \
    "$LAB/etc/systemd/system/"
ln -s ../sentinel-lab.service "$LAB/etc/systemd/system/multi-user.target.wants/sentinel-lab.service"
INITRD="$CACHE/initrd.cpio"
cp "$BASE" "$INITRD"
(cd "$LAB" && find . | cpio -o -H newc --quiet >>"$INITRD")

# Boot: systemd from the initramfs as PID 1. -nic none: no network to the outside at all.
# no_timer_check: on a loaded host the emulated timer can miss the kernel's early IO-APIC
# check, which then panics ("IO-APIC + timer doesn't work").
CONSOLE="$CACHE/console.log"
booted=$SECONDS
set +e
timeout --foreground "$TIMEOUT_SECS" qemu-system-x86_64 -accel tcg -m 1536 -smp 1 -nographic \
    -no-reboot -nic none -kernel "$VMLINUZ" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 no_timer_check rdinit=/sbin/init systemd.show_status=0 systemd.log_level=warning" \
    </dev/null 2>&1 | tr -d '\r' >"$CONSOLE"
qemu_status=${PIPESTATUS[0]}
set -e

grep -E '^systemd-lab' "$CONSOLE" || true
summary="$(grep -E '^systemd-lab: [0-9]+ passed, [0-9]+ failed' "$CONSOLE" | tail -n1 || true)"
if [ -z "$summary" ]; then
    echo "systemd-lab: vm: FAIL (no summary after $((SECONDS - booted)) s; qemu exit $qemu_status; console in $CONSOLE, last lines follow)"
    tail -n 30 "$CONSOLE" | sed 's/^/    /'
    echo "systemd-lab: 0 passed, 1 failed"
    exit 1
fi
echo "systemd-lab: the VM ran $((SECONDS - booted)) s"
failed="$(echo "$summary" | awk '{ print $4 }')"
[ "$failed" = 0 ] || { echo "(console: $CONSOLE)"; exit 1; }
