#!/usr/bin/env bash
# run-all.sh - install what the tests need, then build and run every test.
# As root, the end-to-end tests (network namespaces) run too; otherwise they
# print a SKIP line. The DPDK backend (cargo feature `dpdk`) is built and
# tested when libdpdk is installed (tests/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -eq 0 ]]; then
    bash tests/install-deps.sh
fi
cargo build --workspace --all-targets
cargo test --workspace
if pkg-config --exists libdpdk 2>/dev/null; then
    cargo clippy -p dpdk-sys -p dataplane --features dataplane/dpdk,dpdk-sys/dpdk --all-targets -- -D warnings
    cargo test -p dpdk-sys -p dataplane --features dataplane/dpdk,dpdk-sys/dpdk
    cargo clippy -p dpvsd --features dpvsd/dpdk --all-targets -- -D warnings
    cargo test -p dpvsd --features dpvsd/dpdk --test e2e_dpdk
else
    echo "SKIP: DPDK backend tests: libdpdk not installed (apt-get install dpdk-dev libdpdk-dev libclang-dev pkg-config)"
fi
