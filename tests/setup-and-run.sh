#!/usr/bin/env bash
# The one test command (README, .ci/run): on a fresh Debian 12 machine, as root, install what the
# whole suite needs, start the services it needs, run every check, and leave nothing running.
# Idempotent: what is already installed is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-and-run.sh must run as root: tests use network namespaces, other uids and mounts" >&2
    exit 1
fi
export CARGO_TERM_COLOR=never
export PATH="$HOME/.cargo/bin:$PATH"

# Debian packages the suite uses:
#   lintian, rpm       check the .deb and .rpm we build
#   systemd            systemd-analyze verify on our unit (no systemd needs to run)
#   util-linux, mount  unshare + mount for the journald test's private mount namespace
#   gzip               man pages in the packages
#   docker.io          a real Docker engine for the container probe and (later) healing tests
#   busybox-static     the rootfs of the locally built test image (no registry here)
#   prometheus         promtool, which validates our /metrics output
#   openssl            a throwaway CA and a real TLS server (s_server) for the https probe tests
#   postgresql-15      a real server (initdb, pg_ctl) for the postgres probe tests; none is started
#                      as a service, the tests run their own in temp dirs
#   iproute2           ip/tc: the chaos tests build veth pairs in namespaces and read qdiscs back
APT_PACKAGES=(lintian rpm systemd util-linux mount gzip docker.io busybox-static prometheus postgresql-15 openssl iproute2)
# python3-venv, python3-pip: the Python SDK's tests run in their own venv (sdk/python/.venv)
APT_PACKAGES+=(python3-venv python3-pip)
# prometheus-alertmanager: a real Alertmanager for the notification tests (API v2, resolve)
APT_PACKAGES+=(prometheus-alertmanager)
# qemu-system-x86, cpio, iputils-ping: the kernel lab (tests/kernel-lab) boots a Debian kernel with netem
APT_PACKAGES+=(qemu-system-x86 cpio iputils-ping)
# chromium: loads the status page headless (--dump-dom, --screenshot into target/tmp/)
APT_PACKAGES+=(chromium)
# dnsmasq-base: a real DNS server on a loopback port for the dns probe tests (no service started)
APT_PACKAGES+=(dnsmasq-base)
# debootstrap: the systemd lab (tests/systemd-lab) builds a Debian userland with systemd as PID 1
APT_PACKAGES+=(debootstrap)
CARGO_TOOLS=(cargo-deb cargo-generate-rpm)
# cargo-fuzz: the fuzz targets in fuzz/ (libFuzzer; runs on stable with RUSTC_BOOTSTRAP=1)
CARGO_TOOLS+=(cargo-fuzz)

# Each step says how long the run has taken so far, so a slow step shows in CI's log.
RUN_STARTED=$(date +%s)
step() { printf '\n==> %s   [%s s into the run]\n' "$*" "$(($(date +%s) - RUN_STARTED))"; }

# Work that does not need the steps before it runs in the background meanwhile, at the lowest CPU
# priority (`background`), and is awaited where its result is needed (`await`): the venvs and the
# systemd lab's userland during the builds, the cargo tools and fuzz targets during the Rust tests
# (which mostly wait on daemons, containers and timers), the release binaries during the fuzz runs
# (one core each), the systemd lab beside the Python SDK and the kernel lab. Each has its log,
# shown if it fails.
background() { # LOG COMMAND...: run COMMAND (a function too) niced in the background
    local log="$1"
    shift
    ( renice -n 19 -p "$BASHPID" >/dev/null && "$@" ) >"$log" 2>&1 &
    BACKGROUND_PID=$!
    BACKGROUND_PIDS+=("$!")
}
await() { # PID LOG WHAT: wait for a background job; on failure show its log and stop
    if ! wait "$1"; then
        echo "$3 failed; its log ($2):" >&2
        tail -n 60 "$2" >&2
        exit 1
    fi
    cat "$2"
}

install_apt_packages() {
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        step "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

install_cargo_tools() {
    for tool in "${CARGO_TOOLS[@]}"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            step "cargo install $tool"
            cargo install --locked --quiet "$tool"
        fi
    done
}

# Services started for the suite, and builds running in the background (with their children),
# are stopped on any exit, success or failure.
SERVICE_PIDS=()
BACKGROUND_PIDS=()
kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do kill_tree "$child"; done
    kill "$1" 2>/dev/null || true
}
stop_services() {
    for pid in "${BACKGROUND_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill_tree "$pid"
    done
    for pid in "${SERVICE_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
}
trap stop_services EXIT

# The Docker engine, started with exactly these flags: no docker0 bridge, no iptables changes,
# no private-range addresses (test containers use --network host or none). An engine that
# already answers is used as it is and left running.
start_dockerd() {
    if docker version >/dev/null 2>&1; then
        return
    fi
    step "starting dockerd"
    mkdir -p target
    dockerd --host unix:///var/run/docker.sock --bridge=none --iptables=false --ip6tables=false \
        >target/dockerd.log 2>&1 &
    SERVICE_PIDS+=("$!")
    for _ in $(seq 1 60); do
        docker version >/dev/null 2>&1 && return
        sleep 0.5
    done
    echo "dockerd did not start; its log:" >&2
    cat target/dockerd.log >&2
    exit 1
}

step "installing what the suite needs"
install_apt_packages
start_dockerd
bash tests/images/build-busybox.sh

# moto_server: a real S3 API on loopback for the archive tests (tests/integration/archive.rs).
# Below 5.2: moto 5.2 answers CompleteMultipartUpload with a root element S3 never sends.
if [ ! -x target/moto-venv/bin/moto_server ]; then
    step "pip install moto[server] into target/moto-venv"
    python3 -m venv target/moto-venv
    target/moto-venv/bin/pip install --quiet "moto[server]<5.2"
fi
export MOTO_SERVER="$PWD/target/moto-venv/bin/moto_server"

# aiosmtpd: a real SMTP server on loopback (plain, STARTTLS, implicit TLS) for the email
# channel tests (tests/integration/channels.rs).
if [ ! -x target/smtp-venv/bin/python ] || ! target/smtp-venv/bin/python -c 'import aiosmtpd' 2>/dev/null; then
    step "pip install aiosmtpd into target/smtp-venv"
    python3 -m venv target/smtp-venv
    target/smtp-venv/bin/pip install --quiet "aiosmtpd>=1.4,<2"
fi
export SENTINEL_SMTP_PYTHON="$PWD/target/smtp-venv/bin/python"

# FastAPI instrumented by OpenTelemetry (the unmodified Python stack) exporting OTLP/HTTP to
# sentineld, for the OTLP ingest test (tests/integration/otlp.rs). About 100 s the first time,
# in the background while the code builds.
otel_venv() {
    if [ ! -x target/otel-venv/bin/python ] || ! target/otel-venv/bin/python -c 'import fastapi, uvicorn, opentelemetry.instrumentation.fastapi, opentelemetry.exporter.otlp.proto.http' 2>/dev/null; then
        echo "pip install FastAPI and OpenTelemetry into target/otel-venv"
        python3 -m venv target/otel-venv
        target/otel-venv/bin/pip install --quiet "fastapi>=0.110,<1" "uvicorn>=0.29,<1" \
            "opentelemetry-sdk>=1.20,<2" "opentelemetry-exporter-otlp-proto-http>=1.20,<2" \
            "opentelemetry-instrumentation-fastapi>=0.41b0,<1"
    fi
}
background target/otel-venv.log otel_venv
otel_venv_job=$BACKGROUND_PID
export SENTINEL_OTEL_PYTHON="$PWD/target/otel-venv/bin/python"

# The systemd lab's Debian userland (debootstrap, a few minutes the first time) and the kernel.
background target/systemd-lab-prepare.log bash tests/systemd-lab/run.sh --prepare
systemd_lab_prepare=$BACKGROUND_PID

step "format and lints"
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings

step "unit and integration tests (real sentineld and sentinelctl binaries)"
cargo test --lib --tests --no-run 2>&1 | tee target/test-output.txt

tools_and_fuzz_targets() { install_cargo_tools && bash fuzz/run-short.sh 40 --build-only; }
background target/tools-and-fuzz-build.log tools_and_fuzz_targets
tools_and_fuzz=$BACKGROUND_PID
await "$otel_venv_job" target/otel-venv.log "installing FastAPI and OpenTelemetry into target/otel-venv"
# CI=true makes tests that need root fail instead of skipping; we are root here anyway.
CI="${CI:-true}" cargo test --lib --tests 2>&1 | tee -a target/test-output.txt

step "fuzzing: every fuzz target for about 40 s (fuzz/run-short.sh; long runs: docs/reliability.md)"
await "$tools_and_fuzz" target/tools-and-fuzz-build.log "installing the cargo tools or building the fuzz targets"
background target/release-build.log bash packaging/build-packages.sh --binaries-only
release_build=$BACKGROUND_PID
bash fuzz/run-short.sh 40 --no-build | tee target/fuzz-output.txt

step "packages: build, check contents, lintian, unit file"
await "$release_build" target/release-build.log "the release build"
bash packaging/build-packages.sh
bash packaging/check-packages.sh | tee target/packaging-output.txt
bash packaging/check-unit.sh target/release/sentineld
bash packaging/check-unit.sh target/release/sentinel-agent

step "systemd lab (started): systemd_unit probe and systemd_restart heal against systemd as PID 1 under qemu (tests/systemd-lab/run.sh)"
await "$systemd_lab_prepare" target/systemd-lab-prepare.log "preparing the systemd lab"
# Beside the Python SDK and the kernel lab, at normal priority: its VM has one core to itself.
bash tests/systemd-lab/run.sh target/release/sentineld target/release/sentinelctl >target/systemd-lab-output.txt 2>&1 &
systemd_lab=$!
BACKGROUND_PIDS+=("$systemd_lab")

step "Python SDK (sdk/python): venv, lints, pytest against real FastAPI/uvicorn/Flask and sentineld"
CI="${CI:-true}" SENTINELD_BIN="$PWD/target/release/sentineld" SENTINELCTL_BIN="$PWD/target/release/sentinelctl" \
    bash sdk/python/run-tests.sh | tee target/python-sdk-output.txt

step "kernel lab: netem and cgroup v2 in a Debian kernel under qemu (tests/kernel-lab/run.sh)"
bash tests/kernel-lab/run.sh target/release/sentineld target/release/sentinelctl | tee target/kernel-lab-output.txt

step "systemd lab: its result"
await "$systemd_lab" target/systemd-lab-output.txt "the systemd lab"

# One closing line for the whole run: every Rust test, fuzz target, packaging check, Python SDK
# test and lab check.
awk '/^test result:/ { passed += $4; failed += $6 }
     /^fuzz: [0-9]+ passed/ { passed += $2; failed += $4 }
     /^packaging: [0-9]+ passed/ { passed += $2; failed += $4 }
     /^python-sdk: [0-9]+ passed/ { passed += $2; failed += $4 }
     /^kernel-lab: [0-9]+ passed/ { passed += $2; failed += $4 }
     /^systemd-lab: [0-9]+ passed/ { passed += $2; failed += $4 }
     END { printf "setup-and-run: %d passed, %d failed\n", passed, failed }' \
    target/test-output.txt target/fuzz-output.txt target/packaging-output.txt target/python-sdk-output.txt target/kernel-lab-output.txt target/systemd-lab-output.txt
