#!/usr/bin/env bash
# Builds the sentinel container image without a registry: assembles a minimal root filesystem
# (the two binaries, the C libraries they link, CA certificates, passwd/group, the container's
# config) and `docker import`s it. For a registry and `docker build`, see Dockerfile beside this.
#
# Usage: packaging/container/build-image.sh [TAG] [SENTINELD] [SENTINELCTL]
#   defaults: sentinel:VERSION (also tagged sentinel:latest), target/release/sentineld,
#   target/release/sentinelctl. Binaries with debug info (a debug build) are stripped on the way.
# Needs: docker (engine answering), ldd, strip (binutils), /etc/ssl/certs/ca-certificates.crt.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
tag="${1:-sentinel:$version}"
sentineld="$(realpath "${2:-target/release/sentineld}")"
sentinelctl="$(realpath "${3:-target/release/sentinelctl}")"
certificates=/etc/ssl/certs/ca-certificates.crt

for file in "$sentineld" "$sentinelctl"; do
    [ -x "$file" ] || { echo "build-image: $file is missing (cargo build --release --bins)" >&2; exit 1; }
done
[ -f "$certificates" ] || { echo "build-image: $certificates is missing (apt-get install ca-certificates)" >&2; exit 1; }

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{usr/bin,etc/sentinel,etc/ssl/certs,var/lib/sentinel,run/sentinel,tmp}
chmod 1777 "$root/tmp"
chmod 0750 "$root/var/lib/sentinel"

for binary in "$sentineld" "$sentinelctl"; do
    strip --strip-debug -o "$root/usr/bin/$(basename "$binary")" "$binary"
    # The dynamic loader and every library the binary links, at the paths it looks for them.
    for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$library")"
        cp -nL "$library" "$root$library"
    done
done
cp "$certificates" "$root/etc/ssl/certs/ca-certificates.crt"
cp packaging/container/sentineld.toml "$root/etc/sentinel/sentineld.toml"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nsentinel:x:990:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"

# Owned by root, with stable times, so the same binaries give the same layer.
tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$root" -c . |
    docker import \
        --change 'ENTRYPOINT ["/usr/bin/sentineld"]' \
        --change 'CMD ["--config", "/etc/sentinel/sentineld.toml"]' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'VOLUME /var/lib/sentinel' \
        --change 'EXPOSE 9137' \
        --message "sentinel $version" \
        - "$tag" >/dev/null
if [ $# -eq 0 ]; then
    docker tag "$tag" sentinel:latest
fi
echo "image: $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"
