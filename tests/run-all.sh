#!/usr/bin/env bash
# run-all.sh - install what the tests need, then build and run every test.
# As root, the end-to-end tests (network namespaces) run too; otherwise they
# print a SKIP line.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -eq 0 ]]; then
    bash tests/install-deps.sh
fi
cargo build --workspace --all-targets
cargo test --workspace
