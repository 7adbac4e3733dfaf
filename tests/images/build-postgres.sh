#!/usr/bin/env bash
# Builds the test image `sentinel-test/postgres:15` with no registry: the host's PostgreSQL 15
# server binaries, the shared libraries `ldd` lists for them, tzdata and a passwd with the
# host's postgres user (same uid, so a bind-mounted data dir made by the host's initdb works),
# imported with `docker import`. busybox-static is added as /bin/sh for `docker exec` debugging.
# Usage: tests/images/build-postgres.sh  (idempotent: does nothing when the image exists)
set -euo pipefail
image="sentinel-test/postgres:15"
if docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
pg=/usr/lib/postgresql/15
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,tmp,proc,sys,dev,etc,var/lib/postgresql,var/run/postgresql}
chmod 1777 "$rootfs/tmp"
# the server, pg_ctl (to stop it from `docker exec`) and the loadable modules, minus the JIT
# (llvmjit drags in libLLVM; the drills run with jit = off)
binaries=("$pg/bin/postgres" "$pg/bin/pg_ctl")
for module in "$pg"/lib/*.so; do
    case "$module" in */llvmjit*) continue ;; esac
    binaries+=("$module")
done
cp --parents "${binaries[@]}" "$rootfs"
cp -r --parents /usr/share/postgresql/15 /usr/share/zoneinfo "$rootfs"
# every library the binaries link, at the path the loader looks for it, plus the loader cache
ldd "${binaries[@]}" 2>/dev/null | awk '/=> \//{print $3} /^\t\/[^ ]*ld-linux/{print $1}' |
    sort -u | while read -r lib; do
    cp -L --parents "$lib" "$rootfs"
done
cp /etc/ld.so.cache "$rootfs/etc/"
if [ -x /bin/busybox ]; then
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in sh ls cat ps kill sleep; do ln -s busybox "$rootfs/bin/$applet"; done
fi
{
    echo 'root:x:0:0:root:/:/bin/sh'
    getent passwd postgres | awk -F: -v OFS=: '{print $1, "x", $3, $4, "", "/var/lib/postgresql", "/bin/sh"}'
} >"$rootfs/etc/passwd"
{
    echo 'root:x:0:'
    getent group postgres | awk -F: -v OFS=: '{print $1, "x", $3, ""}'
} >"$rootfs/etc/group"
chown postgres:postgres "$rootfs/var/run/postgresql"
tar -C "$rootfs" -c . | docker import --change 'USER postgres' --change "CMD [\"$pg/bin/postgres\"]" - "$image" >/dev/null
echo "built $image"
