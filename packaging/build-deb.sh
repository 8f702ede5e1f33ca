#!/usr/bin/env bash
# build-deb.sh - build dpvsd's .deb: release binaries, completions and man
# pages generated from those binaries (so they match them), then cargo-deb.
# Needs cargo-deb (`cargo install cargo-deb`). Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p dpvsd --bins
G="$T/release/gen"
mkdir -p "$G"
for b in dpvsd dpvsctl; do
    if [[ $b == dpvsd ]]; then gen=(--generate-completions); man=(--generate-man); else gen=(generate-completions); man=(generate-man); fi
    "$T/release/$b" "${gen[@]}" bash > "$G/$b.bash"
    "$T/release/$b" "${gen[@]}" zsh > "$G/_$b"
    "$T/release/$b" "${gen[@]}" fish > "$G/$b.fish"
    "$T/release/$b" "${man[@]}" | gzip -9n > "$G/$b.8.gz"
done
cargo deb -p dpvsd --no-build --strip | tail -n 1
