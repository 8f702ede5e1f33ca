//! Loads a configuration file and prints the time taken and the number of
//! virtual servers: `cargo run --release -p keepalived-parser --example
//! loadtime -- FILE` (for profiling a single load).
use keepalived_parser::{config_test_exit_code, load_file, LoadOptions};
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: loadtime FILE");
        std::process::exit(2);
    };
    let start = Instant::now();
    match load_file(std::path::Path::new(&path), &LoadOptions::default()) {
        Ok(loaded) => println!(
            "{:.1} ms, {} virtual servers, exit code {}",
            start.elapsed().as_secs_f64() * 1e3,
            loaded.model.virtual_servers.len(),
            config_test_exit_code(&loaded)
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
