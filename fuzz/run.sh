#!/usr/bin/env bash
# run.sh SECONDS [TARGET] - fuzz TARGET for SECONDS (default 60): `parse`
# (keepalived-parser, the default), `wire` (the dataplane's wire views and
# engine on arbitrary frames), one wire view on its own header (`ethernet`,
# `vlan`, `arp`, `ipv4`, `ipv6`, `tcp`, `udp`, `icmpv4`, `icmpv6`), or
# `views`: each of those nine for SECONDS.
#
# Both are libFuzzer targets (fuzz_targets/*.rs), coverage-guided either way:
# - with a nightly toolchain (rustup) and cargo-fuzz, `cargo +nightly fuzz
#   run` (AddressSanitizer on top);
# - on stable (what CI has), the same target built with the SanitizerCoverage
#   passes that cargo-fuzz itself turns on (stable `-C` options), without
#   AddressSanitizer, which needs nightly and matters only for `unsafe`
#   code (the targets reach none).
# `parse` is seeded with ../shared/corpus and a keyword dictionary, and on
# stable is followed by the structured config generator
# (keepalived-parser/tests/fuzz_long.rs) for the same time.
# Exits non-zero on any crash, timeout or failed assertion.
set -euo pipefail
secs="${1:-60}"
target="${2:-parse}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
corpus_src="$root/../shared/corpus"

views=(ethernet vlan arp ipv4 ipv6 tcp udp icmpv4 icmpv6)
case "$target" in
parse | wire) ;;
views)
    for v in "${views[@]}"; do
        bash "$0" "$secs" "$v"
    done
    exit 0
    ;;
*)
    if [[ " ${views[*]} " != *" $target "* ]]; then
        echo "run.sh: unknown target $target (parse, wire, views or one of: ${views[*]})" >&2
        exit 2
    fi
    ;;
esac

cd "$here"
mkdir -p "corpus/$target"
flags=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
if [[ "$target" == parse ]]; then
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
    flags+=(-dict="$dict")
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly' \
    && { command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked; }; then
    # The fuzz crate has its own target dir; a workspace-wide one would mix
    # sanitizer and normal builds.
    unset CARGO_TARGET_DIR
    echo "fuzz: cargo +nightly fuzz run $target for ${secs}s"
    exec cargo +nightly fuzz run "$target" "corpus/$target" -- "${flags[@]}"
fi

# Stable: the flags cargo-fuzz passes, less -Zsanitizer. `--target` keeps
# them off build scripts and proc macros.
triple="$(rustc -vV | sed -n 's/^host: //p')"
out="$here/target/stable"
cov="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
echo "fuzz: no nightly cargo-fuzz; libFuzzer target $target with coverage, no ASan, for ${secs}s"
CARGO_TARGET_DIR="$out" RUSTFLAGS="$cov" cargo build --release --target "$triple" --bin "$target"
"$out/$triple/release/$target" "corpus/$target" "${flags[@]}"

if [[ "$target" == parse ]]; then
    echo "fuzz: structured config generator (keepalived-parser/tests/fuzz_long.rs) for ${secs}s"
    cd "$root"
    FUZZ_SECONDS="$secs" cargo test --release -p keepalived-parser --test fuzz_long \
        -- --ignored --nocapture
fi
