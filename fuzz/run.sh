#!/usr/bin/env bash
# run.sh SECONDS [TARGET] - fuzz TARGET for SECONDS (default 60): `parse`
# (keepalived-parser, the default) or `wire` (the dataplane's wire views and
# engine on arbitrary frames).
#
# With a nightly toolchain (rustup), cargo-fuzz (installed from crates.io when
# missing) runs the libFuzzer target `parse` seeded with shared/corpus and a
# keyword dictionary. Without nightly, the stable structured fuzzer
# (keepalived-parser/tests/fuzz_long.rs) runs for the same time instead.
# Exits non-zero on any crash, timeout or failed assertion.
set -euo pipefail
secs="${1:-60}"
target="${2:-parse}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
corpus_src="$root/../shared/corpus"

stable_fuzz() {
    if [[ "$target" == wire ]]; then
        echo "fuzz: no cargo-fuzz; the dataplane's random-bytes property tests instead"
        cd "$root"
        PROPTEST_CASES=100000 cargo test --release -p dataplane --lib -- never_panic
        return
    fi
    echo "fuzz: stable structured fuzzer (tests/fuzz_long.rs) for ${secs}s"
    cd "$root"
    FUZZ_SECONDS="$secs" cargo test --release -p keepalived-parser --test fuzz_long \
        -- --ignored --nocapture
}

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain, so no cargo-fuzz (libFuzzer needs -Zsanitizer)"
    stable_fuzz
    exit
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz: could not install cargo-fuzz; using the stable fuzzer instead"
        stable_fuzz
        exit
    fi
fi

cd "$here"
if [[ "$target" == wire ]]; then
    unset CARGO_TARGET_DIR
    mkdir -p corpus/wire
    echo "fuzz: cargo +nightly fuzz run wire for ${secs}s"
    exec cargo +nightly fuzz run wire corpus/wire -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
fi
# The fuzz crate has its own target dir; a workspace-wide one would mix
# sanitizer and normal builds.
unset CARGO_TARGET_DIR
mkdir -p corpus/parse
if [[ -d "$corpus_src" ]]; then
    find "$corpus_src" -type f ! -name '*.tsv' ! -name '*.md' -exec cp -f {} corpus/parse/ \;
fi
# Dictionary: every keyword (first word of a line) in the seeds, plus braces.
dict="$here/target/parse.dict"
mkdir -p "$here/target"
{
    printf '"{"\n"}"\n"include "\n"@"\n"$"\n"~SEQ("\n"\\\\"\n'
    cat corpus/parse/* 2>/dev/null | awk '{print $1}' | grep -E '^[A-Za-z_][A-Za-z0-9_-]*$' \
        | sort -u | sed 's/.*/"&"/'
} >"$dict"
echo "fuzz: cargo +nightly fuzz run parse for ${secs}s"
cargo +nightly fuzz run parse corpus/parse -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -dict="$dict" \
    -print_final_stats=1
