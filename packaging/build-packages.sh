#!/usr/bin/env bash
# Build the sentinel .deb and .rpm: release binaries, generated man pages and shell
# completions (examples/gen_assets.rs), then cargo-deb and cargo-generate-rpm, which take
# their file lists from [package.metadata.deb] / [package.metadata.generate-rpm] in Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

assets=target/assets
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
# Reproducible dates (man pages, changelog): the last commit, else now.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

# One cargo invocation for the binaries and the generator, so they share one build.
# --binaries-only stops here (tests/setup-and-run.sh builds them in the background early).
cargo build --release --locked --bins --example gen_assets
[ "${1:-}" = --binaries-only ] && exit 0

# Start from an empty assets dir so a renamed subcommand leaves no stale page behind.
rm -rf "$assets"
cargo run --release --locked --quiet --example gen_assets -- "$assets" >/dev/null
# Debian policy and lintian want man pages compressed with gzip -9, without a timestamp (-n).
gzip -9n "$assets"/man/*.[18]

# cargo-deb installs this as changelog.Debian.gz; lintian wants one in every package.
# Generated so its version always matches the crate's.
cat >"$assets/changelog" <<CHANGELOG
sentinel (${version}-1) unstable; urgency=medium

  * Release ${version}.

 -- Sentinel developers <sentinel@sentinel.invalid>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
CHANGELOG

# Old versions' packages would confuse check-packages.sh, which expects exactly one of each.
rm -f target/debian/sentinel_*.deb target/generate-rpm/sentinel-*.rpm
# --no-build: the binaries above are what we package (release profile already strips them).
deb=$(cargo deb --no-build --locked --output target/debian/)
cargo generate-rpm
rpm=$(ls target/generate-rpm/sentinel-*.rpm)

echo "deb: $deb"
echo "rpm: $rpm"
