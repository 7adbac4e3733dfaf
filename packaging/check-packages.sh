#!/usr/bin/env bash
# Check the .deb and .rpm that packaging/build-packages.sh made: every expected path is in
# each, the config is a conffile, lintian finds no errors, the packaged binaries run, and
# (as root, where overlayfs works) the packages install and remove in a throwaway root
# without systemd. Never installs anything on this host.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
# check DESCRIPTION COMMAND...: one check, passed when COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}

# Exactly one of each, or we might check a stale package from an older version.
shopt -s nullglob
debs=(target/debian/sentinel_*.deb) rpms=(target/generate-rpm/sentinel-*.rpm)
if [ ${#debs[@]} -ne 1 ] || [ ${#rpms[@]} -ne 1 ]; then
    echo "check-packages: want one sentinel .deb and one .rpm, found: ${debs[*]} ${rpms[*]}" >&2
    echo "check-packages: run packaging/build-packages.sh first" >&2
    exit 1
fi
deb=${debs[0]} rpm=${rpms[0]}
echo "checking $deb and $rpm"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- contents -------------------------------------------------------------------------
# Both listings as absolute paths, one per line.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#; s#/$##' >"$tmp/deb.list"
rpm -qlp "$rpm" >"$tmp/rpm.list"

common=(
    /usr/bin/sentineld /usr/bin/sentinelctl /usr/bin/sentinel-agent
    /etc/sentinel/sentineld.toml /etc/sentinel/agent.toml
    /usr/share/man/man8/sentineld.8.gz
    /usr/share/man/man1/sentinelctl.1.gz
    /usr/share/man/man1/sentinel-agent.1.gz
    /usr/share/bash-completion/completions/sentinelctl
    /usr/share/bash-completion/completions/sentineld
    /usr/share/fish/vendor_completions.d/sentinelctl.fish
    /usr/share/fish/vendor_completions.d/sentineld.fish
    /usr/share/doc/sentinel/README.md
)
# Every man page gen_assets wrote (the per-command pages too) must be shipped.
for page in target/assets/man/*.[18].gz; do
    name=${page##*/}
    path=/usr/share/man/man${name: -4:1}/$name
    [[ " ${common[*]} " == *" $path "* ]] || common+=("$path")
done
# Where each distribution's systemd and zsh look (zsh on Fedora/RHEL has no vendor-completions).
deb_only=(
    /lib/systemd/system/sentineld.service
    /lib/systemd/system/sentinel-agent.service
    /usr/share/zsh/vendor-completions/_sentinelctl
    /usr/share/zsh/vendor-completions/_sentineld
    /usr/share/doc/sentinel/copyright
    /usr/share/doc/sentinel/changelog.Debian.gz
)
rpm_only=(
    /usr/lib/systemd/system/sentineld.service
    /usr/lib/systemd/system/sentinel-agent.service
    /usr/share/zsh/site-functions/_sentinelctl
    /usr/share/zsh/site-functions/_sentineld
)
for path in "${common[@]}" "${deb_only[@]}"; do
    if grep -qxF "$path" "$tmp/deb.list"; then ok "deb has $path"; else bad "deb is missing $path"; fi
done
for path in "${common[@]}" "${rpm_only[@]}"; do
    if grep -qxF "$path" "$tmp/rpm.list"; then ok "rpm has $path"; else bad "rpm is missing $path"; fi
done

# --- conffiles and maintainer scripts -------------------------------------------------
check "deb marks /etc/sentinel/sentineld.toml as a conffile" \
    grep -qxF /etc/sentinel/sentineld.toml <(dpkg-deb -I "$deb" conffiles)
check "rpm marks /etc/sentinel/sentineld.toml as config" \
    grep -qxF /etc/sentinel/sentineld.toml <(rpm -qcp "$rpm")
check "deb marks /etc/sentinel/agent.toml as a conffile" \
    grep -qxF /etc/sentinel/agent.toml <(dpkg-deb -I "$deb" conffiles)
check "rpm marks /etc/sentinel/agent.toml as config" \
    grep -qxF /etc/sentinel/agent.toml <(rpm -qcp "$rpm")
# FILEFLAGS "cn" = %config(noreplace): an edited config survives upgrades.
check "rpm config is noreplace" \
    grep -qxF 'cn /etc/sentinel/sentineld.toml' <(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm")
check "deb postinst creates the sentinel group" grep -q 'addgroup --system' <(dpkg-deb -I "$deb" postinst)
check "deb postinst starts the unit only under systemd" \
    grep -qF '[ -d /run/systemd/system ]' <(dpkg-deb -I "$deb" postinst)
check "rpm post-install creates the sentinel group" grep -q 'groupadd --system' <(rpm -qp --scripts "$rpm")

# --- lintian --------------------------------------------------------------------------
# Errors fail the check; warnings and info are shown. (It warns about running as root.)
lintian_rc=0
lintian --display-info "$deb" >"$tmp/lintian.out" 2>/dev/null || lintian_rc=$?
sed 's/^/      lintian: /' "$tmp/lintian.out"
errors=$(grep -c '^E:' "$tmp/lintian.out" || true)
warnings=$(grep -c '^W:' "$tmp/lintian.out" || true)
if [ "$lintian_rc" -eq 0 ] && [ "$errors" -eq 0 ]; then
    ok "lintian: 0 errors, $warnings warnings"
else
    bad "lintian: $errors errors, $warnings warnings (exit $lintian_rc)"
fi

# --- the packaged files work ----------------------------------------------------------
mkdir "$tmp/deb" "$tmp/rpm"
dpkg-deb -x "$deb" "$tmp/deb"
rpm2archive - <"$rpm" | tar -xz -C "$tmp/rpm"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
for bin in sentineld sentinelctl sentinel-agent; do
    check "packaged $bin --version prints $version" \
        grep -qF "$version" <("$tmp/deb/usr/bin/$bin" --version)
    check "rpm and deb ship the same $bin" cmp "$tmp/deb/usr/bin/$bin" "$tmp/rpm/usr/bin/$bin"
done
check "packaged sentineld accepts the packaged config" \
    "$tmp/deb/usr/bin/sentineld" check-config "$tmp/deb/etc/sentinel/sentineld.toml"
check "packaged sentinel-agent accepts the packaged agent config" \
    "$tmp/deb/usr/bin/sentinel-agent" --check-config --config "$tmp/deb/etc/sentinel/agent.toml"
check "deb unit is systemd/sentineld.service" \
    cmp "$tmp/deb/lib/systemd/system/sentineld.service" systemd/sentineld.service
check "rpm unit is systemd/sentineld.service" \
    cmp "$tmp/rpm/usr/lib/systemd/system/sentineld.service" systemd/sentineld.service
check "deb agent unit is systemd/sentinel-agent.service" \
    cmp "$tmp/deb/lib/systemd/system/sentinel-agent.service" systemd/sentinel-agent.service
check "rpm agent unit is systemd/sentinel-agent.service" \
    cmp "$tmp/rpm/usr/lib/systemd/system/sentinel-agent.service" systemd/sentinel-agent.service

# --- install and remove, in a throwaway root without systemd --------------------------
# A private mount namespace, a tmpfs, and an overlay of / on it: dpkg and rpm write only
# to the tmpfs, which vanishes with the namespace. Its /run is the root filesystem's
# empty one, so the scripts see no running systemd, as in a container or chroot.
cat >"$tmp/install-test.sh" <<'INNER'
set -eu
dir=$1 deb=$2 rpm=$3
mount -t tmpfs tmpfs "$dir"
mkdir "$dir/upper" "$dir/work" "$dir/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
cp "$deb" "$dir/root/tmp/sentinel.deb"
cp "$rpm" "$dir/root/tmp/sentinel.rpm"
chroot "$dir/root" sh -eu -c '
    state() { test "$(stat -c "%a %U:%G" /var/lib/sentinel)" = "750 root:sentinel"; }
    # The overlay shows the host: a sentineld run by hand as root (README, command 1) leaves
    # /var/lib/sentinel root:root there. Removed in the overlay only, so the install starts
    # from a machine that never had sentinel, whatever ran on this one before.
    rm -rf /var/lib/sentinel /var/lib/sentinel-agent /etc/sentinel /run/sentinel
    getent group sentinel >/dev/null && groupdel sentinel
    dpkg -i /tmp/sentinel.deb
    getent group sentinel && state
    test -L /etc/systemd/system/multi-user.target.wants/sentineld.service
    # the agent needs its log paths first: installed, not enabled
    test -f /lib/systemd/system/sentinel-agent.service
    test ! -e /etc/systemd/system/multi-user.target.wants/sentinel-agent.service
    sentineld check-config /etc/sentinel/sentineld.toml
    dpkg --purge sentinel
    test ! -e /var/lib/sentinel && test ! -e /etc/sentinel/sentineld.toml
    groupdel sentinel
    # Debian has no rpm database of libc, hence --nodeps.
    rpm -i --nodeps /tmp/sentinel.rpm
    getent group sentinel && state
    sentineld check-config /etc/sentinel/sentineld.toml
    rpm -e sentinel
    test ! -e /usr/bin/sentineld
    # A state directory that exists before the install (a hand run of sentineld as root
    # made it root:root 0750) is left as it is, and the package still installs and checks.
    rm -rf /var/lib/sentinel && mkdir -m 0750 /var/lib/sentinel
    dpkg -i /tmp/sentinel.deb
    test "$(stat -c "%a %U:%G" /var/lib/sentinel)" = "750 root:root"
    sentineld check-config /etc/sentinel/sentineld.toml
    dpkg --purge sentinel
'
INNER
if [ "$(id -u)" -ne 0 ] || ! grep -qw overlay /proc/filesystems; then
    if [ -n "${CI:-}" ]; then
        bad "install test needs root and overlayfs, and CI must run it"
    else
        echo "!!! SKIPPING install test: needs root and overlayfs (allowed only outside CI) !!!"
    fi
elif mkdir "$tmp/root" && unshare --mount --propagation private \
    bash "$tmp/install-test.sh" "$tmp/root" "$PWD/$deb" "$PWD/$rpm" >"$tmp/install.log" 2>&1; then
    ok "deb and rpm install, run check-config and remove in a root without systemd"
else
    sed 's/^/      install: /' "$tmp/install.log"
    bad "deb/rpm install test in a throwaway root (log above)"
fi

echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
