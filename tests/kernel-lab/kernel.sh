# Sourced by the labs (tests/kernel-lab/run.sh, tests/systemd-lab/run.sh): fetch_kernel CACHE
# downloads the package linux-image-amd64 currently depends on, once, and extracts its vmlinuz
# and the modules the kernel lab loads under CACHE/kernel. Needs the caller's fail_setup.
fetch_kernel() {
    local cache="$1"
    mkdir -p "$cache"
    ls "$cache"/kernel/boot/vmlinuz-* "$cache"/kernel/lib/modules/*/kernel/drivers/net/ifb.ko* >/dev/null 2>&1 && return 0
    download() {
        # `|| true`: under the callers' `set -e -o pipefail`, an ls that matches nothing would
        # end the lab silently
        deb="$(ls "$cache"/linux-image-[0-9]*.deb 2>/dev/null | head -n1 || true)"
        [ -f "$deb" ] && { package="$(basename "$deb" | cut -d_ -f1)"; return 0; }
        package="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
        [ -n "$package" ] || return 0
        (cd "$cache" && apt-get download -q "$package" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
        deb="$(ls "$cache"/"$package"_*.deb 2>/dev/null | head -n1 || true)"
    }
    deb=""
    download
    # stale package lists name a version the mirror no longer has: refresh them once
    [ -f "$deb" ] || { apt-get update -qq && download; }
    [ -n "$package" ] || fail_setup "apt-cache knows no linux-image-amd64"
    [ -f "$deb" ] || fail_setup "apt-get download $package failed"
    rm -rf "$cache/kernel.tmp" && mkdir -p "$cache/kernel.tmp"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache/kernel.tmp" --wildcards \
        './boot/vmlinuz-*' './lib/modules/*/kernel/net/sched/*' './lib/modules/*/kernel/drivers/net/veth.ko*' \
        './lib/modules/*/kernel/drivers/net/ifb.ko*'
    rm -rf "$cache/kernel" && mv "$cache/kernel.tmp" "$cache/kernel"
}
