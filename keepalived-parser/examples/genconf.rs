//! Writes the benchmark configuration (default 10,000 virtual servers × 10
//! real servers with TCP_CHECKs):
//! `cargo run --release -p keepalived-parser --example genconf -- OUT [VS [RS]]`.

#[path = "../benches/support/genconf.rs"]
mod genconf;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: genconf OUT [VIRTUAL_SERVERS [REAL_SERVERS_EACH]]");
        return ExitCode::from(2);
    };
    let num = |i: usize, default: u32| match args.get(i) {
        Some(s) => s.parse::<u32>().map_err(|e| format!("{s}: {e}")),
        None => Ok(default),
    };
    let (vs, rs) = match (num(1, 10_000), num(2, 10)) {
        (Ok(vs), Ok(rs)) => (vs, rs),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("genconf: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::write(out, genconf::generate(vs, rs)) {
        eprintln!("genconf: {out}: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {out}: {vs} virtual servers x {rs} real servers");
    ExitCode::SUCCESS
}
