#!/usr/bin/env bash
# Builds the test image `sentinel-test/busybox` with no registry: a busybox-static rootfs
# imported with `docker import`. Containers run `busybox httpd` (or sh) from it.
# Usage: tests/images/build-busybox.sh  (idempotent: does nothing when the image exists)
set -euo pipefail
image="sentinel-test/busybox:latest"
if docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
# busybox-static (Debian) installs a statically linked /bin/busybox: no libraries to copy.
busybox=/bin/busybox
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,tmp,www,proc,sys,dev,etc}
cp "$busybox" "$rootfs/bin/busybox"
for applet in sh httpd sleep echo cat kill ls wget test true false mkdir rm touch; do
    ln -s busybox "$rootfs/bin/$applet"
done
echo ok > "$rootfs/www/health"
echo 'root:x:0:0:root:/:/bin/sh' > "$rootfs/etc/passwd"
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
echo "built $image"
