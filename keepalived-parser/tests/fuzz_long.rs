//! A structured random-mutation fuzzer that runs on stable Rust (the
//! cargo-fuzz target in `fuzz/` needs nightly). Ignored by default; run it
//! with `FUZZ_SECONDS=60 cargo test --release -p keepalived-parser --test
//! fuzz_long -- --ignored --nocapture` (or `bash fuzz/run.sh 60`).
//!
//! Seeds are the corpus files (plus a built-in config); each round applies
//! 1–8 mutations (byte flips, line duplication / deletion / swapping, brace
//! insertion and deletion, keyword splicing from other seeds, overlong
//! lines, NULs, deep nesting, quotes, `$NAME` and `~SEQ` lines) and checks:
//! no panic, bounded time per input, every diagnostic located with its
//! source line. A failing input is written to the temp dir.

use keepalived_parser::{dump, load_str, load_str_with, Dialect, LoadOptions, ParseMode};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Slowest acceptable load of one input (generous: debug builds, a busy CI).
const MAX_PER_INPUT: Duration = Duration::from_secs(5);

const BUILTIN_SEED: &str = "global_defs {\n router_id R1\n}\n\
vrrp_instance VI_1 {\n state MASTER\n interface eth0\n virtual_router_id 51\n\
 priority 100\n virtual_ipaddress {\n  10.0.0.1/24 dev eth0\n }\n}\n\
virtual_server 10.0.0.1 80 {\n delay_loop 6\n lb_algo rr\n lb_kind NAT\n protocol TCP\n\
 real_server 10.0.1.1 80 {\n  weight 1\n  TCP_CHECK {\n   connect_timeout 3\n  }\n }\n}\n";

const SNIPPETS: &[&str] = &[
    "{",
    "}",
    "\0",
    "\"",
    "#",
    "!",
    "\\",
    "@fuzz ",
    "@^fuzz ",
    "$X=$X$X",
    "$Y=a \\",
    "${_RANDOM}",
    "${_PWD}",
    "~SEQ(i,1,100000) x $i",
    "~LST(i,a,b,c) $i {",
    "include /nonexistent/*.conf",
    "includer missing.conf",
    "virtual_server_group G {",
    "real_server 10.0.0.1 80 {",
    "HTTP_GET { url { path / digest 00 } }",
    "track_script {",
    "virtual_ipaddress {",
    "4294967296",
    "-1",
    "1e400",
    "0.0000001",
    "::ffff:1.2.3.4/129",
    "10.0.0.1-300",
    "\u{00e9}\u{ffff}",
];

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<String> {
    let mut out = vec![BUILTIN_SEED.to_string()];
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    for sub in ["keepalived", "dpvs"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        out.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    out
}

fn mutate(rng: &mut Rng, input: &str, seeds: &[String]) -> String {
    let mut lines: Vec<String> = input.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    for _ in 0..=rng.below(8) {
        let n = lines.len();
        let i = rng.below(n);
        match rng.below(12) {
            0 => {
                // Flip bits of a byte (lossily decoded again afterwards).
                let mut bytes = lines[i].clone().into_bytes();
                if !bytes.is_empty() {
                    let j = rng.below(bytes.len());
                    bytes[j] ^= 1 << rng.below(8);
                }
                lines[i] = String::from_utf8_lossy(&bytes).into_owned();
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 if n > 1 => {
                lines.remove(i);
            }
            3 => {
                let j = rng.below(n);
                lines.swap(i, j);
            }
            4 => {
                // A brace or another snippet at a random char boundary.
                let s = SNIPPETS[rng.below(SNIPPETS.len())];
                let at = char_boundary(&lines[i], rng.below(lines[i].len() + 1));
                lines[i].insert_str(at, s);
                lines[i].insert(at + s.len(), ' ');
            }
            5 => {
                // Delete a brace.
                if let Some(p) = lines[i].find(['{', '}']) {
                    lines[i].remove(p);
                }
            }
            6 => {
                // Splice a line (keyword and all) from another seed.
                let other = &seeds[rng.below(seeds.len())];
                let ol: Vec<&str> = other.lines().collect();
                if !ol.is_empty() {
                    lines.insert(i, ol[rng.below(ol.len())].to_string());
                }
            }
            7 => {
                // Lines around keepalived's 1024-byte limit, or far longer.
                let len = [1021, 1022, 1023, 1024, 5000, 100_000][rng.below(6)];
                lines.insert(i, format!("router_id {}", "x".repeat(len)));
            }
            8 => lines[i].push('\0'),
            9 => {
                let depth = 1 + rng.below(400);
                lines.insert(i, "a {".repeat(depth));
            }
            10 => {
                // Replace a word with a snippet.
                let words: Vec<&str> = lines[i].split_whitespace().collect();
                if !words.is_empty() {
                    let w = rng.below(words.len());
                    let s = SNIPPETS[rng.below(SNIPPETS.len())];
                    let mut new: Vec<&str> = words.clone();
                    new[w] = s;
                    lines[i] = new.join(" ");
                }
            }
            _ => {
                let s = SNIPPETS[rng.below(SNIPPETS.len())];
                lines.insert(i, s.to_string());
            }
        }
    }
    let mut out = lines.join(if rng.below(10) == 0 { "\r\n" } else { "\n" });
    if rng.below(4) != 0 {
        out.push('\n');
    }
    out
}

fn char_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Loads one input; returns what is wrong with the result, if anything.
fn check(input: &str) -> Result<Duration, String> {
    let name = Path::new("/nonexistent-fuzz-dir/keepalived.conf");
    let opts = LoadOptions {
        config_id: Some("fuzz".into()),
    };
    let start = Instant::now();
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        // Every parse mode gets inputs: the mode follows the input's length.
        let mode = ParseMode {
            strict: input.len() % 2 == 1,
            dialect: if input.len() % 3 == 0 {
                Dialect::Dpvs
            } else {
                Dialect::Keepalived
            },
        };
        let l = load_str_with(input, name, &opts, mode);
        let _ = dump(&l.model);
        l
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default();
        format!("panic: {msg}")
    })?;
    let took = start.elapsed();
    if took > MAX_PER_INPUT {
        return Err(format!("took {took:?}"));
    }
    for d in &loaded.diagnostics {
        if d.location.line == 0 || d.location.col == 0 {
            return Err(format!("unlocated diagnostic: {d}"));
        }
        if *d.location.file == *name && d.source_line.is_none() {
            return Err(format!("diagnostic without its source line: {d}"));
        }
    }
    Ok(took)
}

#[test]
fn built_in_seed_is_clean() {
    // Keeps the fuzzer's own seed meaningful: it is a valid configuration.
    let l = load_str(
        BUILTIN_SEED,
        Path::new("/nonexistent-fuzz-dir/keepalived.conf"),
        &LoadOptions {
            config_id: Some("fuzz".into()),
        },
    );
    assert!(l.is_runnable(), "{:#?}", l.diagnostics);
    assert_eq!(l.model.virtual_servers[0].real_servers.len(), 1);
}

#[test]
#[ignore = "long-running: FUZZ_SECONDS (default 60); see fuzz/run.sh"]
fn random_mutations_never_panic_and_stay_located() {
    let secs: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    println!("fuzz_long: FUZZ_SECONDS={secs} FUZZ_SEED={seed}");
    let seeds = seeds();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut slowest) = (0u64, Duration::ZERO);
    let mut slowest_input = String::new();
    let mut pool: Vec<String> = seeds.clone();
    while Instant::now() < deadline {
        let base = pool[rng.below(pool.len())].clone();
        let input = mutate(&mut rng, &base, &seeds);
        match check(&input) {
            Ok(took) if took > slowest => {
                slowest = took;
                slowest_input = input.clone();
            }
            Ok(_) => {}
            Err(why) => {
                let path = std::env::temp_dir().join(format!("fuzz_long-crash-{seed}-{runs}.conf"));
                let saved = std::fs::write(&path, &input).is_ok();
                panic!(
                    "after {runs} inputs: {why}; input saved: {saved} at {}",
                    path.display()
                );
            }
        }
        runs += 1;
        // Keep some mutants as bases so mutations compound; bound the pool.
        if rng.below(4) == 0 && input.len() < 200_000 {
            if pool.len() < 512 {
                pool.push(input);
            } else {
                let i = rng.below(pool.len());
                pool[i] = input;
            }
        }
    }
    let path = std::env::temp_dir().join("fuzz_long-slowest.conf");
    if std::fs::write(&path, &slowest_input).is_ok() {
        println!("fuzz_long: slowest input saved at {}", path.display());
    }
    println!("fuzz_long: {runs} inputs in {secs}s, slowest {slowest:?}, no failure");
    assert!(runs > 0);
}
