//! `dpvsd bench`: the forwarding engine's speed: a `# cpu=…` line naming
//! the machine, then one line per case.
//!
//! * `--backend mem` (default): the engine alone, frames from memory in
//!   32-frame bursts on this thread ([`dataplane::bench::MEM_CASES`]:
//!   `null`, `fnat/16k`, `fnat/1m`, `fnat/new` (`cps=`), DR, NAT and TUN at
//!   16k and 1m flows). `ratio` is against `null`; `allocs` counts heap
//!   allocations in the measured loops (dpvsd's global allocator counts
//!   them with relaxed atomics: the daemon's hot path allocates nothing,
//!   so the cost is nil and the bench needs no second binary).
//! * `--backend dpdk` (built with `--features dpdk`): FNAT through the
//!   engine on two `net_pcap` vdevs replaying 64-byte ACKs of 16k / 1m
//!   flows (`infinite_rx=1`), one worker core, zero-copy; then
//!   `dpdk-testpmd --forward-mode=macswap` on the same vdevs and core, and
//!   the ratio. `--workers N`: N worker threads, each on its own two pcap
//!   vdevs with its own engine, Mpps summed (no testpmd run) ([`dataplane::io::dpdk::bench`]). `--hugepages` uses EAL
//!   with reserved hugepages (else `--no-huge`: about half the speed).

use clap::Parser;

/// `dpvsd bench` arguments.
#[derive(Debug, Parser)]
#[command(name = "dpvsd bench")]
pub struct BenchCli {
    /// mem: the engine alone; dpdk: net_pcap vdevs and testpmd.
    #[arg(long, default_value = "mem")]
    pub backend: String,
    /// Cases to run (prefix match, repeatable) [default: all].
    #[arg(long = "case", value_name = "CASE")]
    pub cases: Vec<String>,
    /// Seconds per case.
    #[arg(long, default_value_t = 3)]
    pub secs: u32,
    /// Worker cores (dpdk backend: one pair of pcap vdevs per worker).
    #[arg(long, default_value_t = 1)]
    pub workers: u16,
    /// EAL with reserved hugepages (dpdk backend).
    #[arg(long)]
    pub hugepages: bool,
}

fn wanted(cli: &BenchCli, name: &str) -> bool {
    cli.cases.is_empty() || cli.cases.iter().any(|c| name.starts_with(c.as_str()))
}

/// Runs the benchmark; prints one line per case. `allocs` reads the
/// process's allocation counter.
///
/// # Errors
/// An unknown backend or case, or the DPDK run failed (the message says why).
pub fn run(cli: &BenchCli, allocs: &dyn Fn() -> u64) -> Result<(), String> {
    let run = match cli.backend.as_str() {
        "mem" => run_mem,
        "dpdk" => |cli: &BenchCli, _: &dyn Fn() -> u64| run_dpdk(cli),
        b => return Err(format!("unknown backend {b:?} (mem or dpdk)")),
    };
    // Figures mean little without the machine that made them.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!("{}", host_line(&cpuinfo, cpus));
    run(cli, allocs)
}

/// `# cpu="MODEL" family=F model=M cpus=N`, from `/proc/cpuinfo`'s first
/// processor (fields it lacks are left out).
fn host_line(cpuinfo: &str, cpus: usize) -> String {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let mut line = format!(
        "# cpu={:?}",
        field("model name").unwrap_or_else(|| "unknown".into())
    );
    for (key, name) in [("family", "cpu family"), ("model", "model")] {
        if let Some(v) = field(name) {
            line.push_str(&format!(" {key}={v}"));
        }
    }
    line + &format!(" cpus={cpus}")
}

fn run_mem(cli: &BenchCli, allocs: &dyn Fn() -> u64) -> Result<(), String> {
    use dataplane::bench::{Case, MEM_CASES};
    let cases: Vec<_> = MEM_CASES.iter().filter(|c| wanted(cli, c.0)).collect();
    if cases.is_empty() {
        let names: Vec<_> = MEM_CASES.iter().map(|c| c.0).collect();
        return Err(format!("no such case; cases: {}", names.join(" ")));
    }
    let mut null_mpps = None;
    // The baseline runs first (for the ratio) even when not asked for.
    if !cases.iter().any(|c| c.0 == "null") {
        let (name, kind, mode, flows) = MEM_CASES[0];
        let mut c = Case::new(name, kind, mode, true, flows, 1024);
        c.run_for(f64::from(cli.secs.max(1)) / 2.0, allocs);
        null_mpps = Some(c.mpps());
    }
    let mut allocating = Vec::new();
    for &&(name, kind, mode, flows) in &cases {
        let capacity = (flows as usize).next_power_of_two().max(1024);
        let mut c = Case::new(name, kind, mode, true, flows, capacity);
        c.run_for(f64::from(cli.secs.max(1)), allocs);
        if name == "null" {
            null_mpps = Some(c.mpps());
        }
        if c.not_forwarded > 0 {
            return Err(format!("{name}: {} packets not forwarded", c.not_forwarded));
        }
        if c.allocs > 0 {
            allocating.push(name);
        }
        println!("{}", c.line(null_mpps));
    }
    if allocating.is_empty() {
        Ok(())
    } else {
        Err(format!("the hot path allocated in {allocating:?}"))
    }
}

#[cfg(feature = "dpdk")]
fn run_dpdk(cli: &BenchCli) -> Result<(), String> {
    let mut ran = false;
    for (name, flows) in [("fnat/16k", 1u32 << 14), ("fnat/1m", 1 << 20)] {
        if !wanted(cli, name) {
            continue;
        }
        ran = true;
        let line = dataplane::io::dpdk::bench::run(
            flows,
            name,
            cli.hugepages,
            cli.secs,
            true,
            usize::from(cli.workers.max(1)),
        )
        .map_err(|e| e.to_string())?;
        println!("{line}");
    }
    if ran {
        Ok(())
    } else {
        Err("no such case; cases: fnat/16k fnat/1m".into())
    }
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_cli: &BenchCli) -> Result<(), String> {
    Err("this dpvsd was built without DPDK support (rebuild with `--features dpdk`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> BenchCli {
        BenchCli::parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    #[test]
    fn mem_cases_run_and_bad_names_are_refused() {
        let ok = run(&cli(&["--case", "dr/16k", "--secs", "1"]), &|| 0);
        assert_eq!(ok, Ok(()));
        // An allocating counter is reported as a hot-path allocation.
        let n = std::cell::Cell::new(0);
        let counting = || {
            n.set(n.get() + 1);
            n.get()
        };
        let e = run(&cli(&["--case", "null", "--secs", "1"]), &counting).expect_err("allocs");
        assert!(e.contains("allocated"), "{e}");
        let e = run(&cli(&["--case", "bogus"]), &|| 0).expect_err("bogus");
        assert!(e.contains("fnat/1m"), "{e}");
        let e = run(&cli(&["--backend", "xdp"]), &|| 0).expect_err("backend");
        assert!(e.contains("xdp"), "{e}");
    }

    #[test]
    fn the_host_line_names_the_first_processor() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
                    model\t\t: 17\nmodel name\t: AMD EPYC\n\n\
                    processor\t: 1\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Other\n";
        assert_eq!(
            host_line(info, 2),
            "# cpu=\"AMD EPYC\" family=25 model=17 cpus=2"
        );
        assert_eq!(host_line("", 1), "# cpu=\"unknown\" cpus=1");
    }
}
