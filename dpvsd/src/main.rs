//! `dpvsd`: parse the CLI → load the config → assemble → run → drain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use dpvsd::backend::{BackendOptions, CpuList, DpdkOptions};
use dpvsd::{assemble, ctl, daemon};
use keepalived_parser::{load_file_with, Dialect, LoadOptions, ParseMode};

/// A DPVS/keepalived-compatible L4 load balancer. Reads keepalived.conf.
#[derive(Debug, Parser)]
#[command(name = "dpvsd", version)]
struct Cli {
    /// Configuration file [default: /etc/dpvsd/keepalived.conf, else /etc/keepalived/keepalived.conf].
    #[arg(short = 'f', long = "use-file", value_name = "FILE")]
    use_file: Option<PathBuf>,
    /// Check the configuration, print its diagnostics and exit (0 = clean).
    #[arg(short = 't', long = "config-test")]
    config_test: bool,
    /// Stay in the foreground.
    #[arg(short = 'n', long = "dont-fork")]
    dont_fork: bool,
    /// Log to the console (stderr). dpvsd always does; accepted for keepalived compatibility.
    #[arg(short = 'l', long = "log-console")]
    log_console: bool,
    /// Detailed (debug) logging.
    #[arg(short = 'D', long = "log-detail")]
    log_detail: bool,
    /// The config id used by `@ID` conditional lines [default: the short hostname].
    #[arg(short = 'i', long = "config-id", value_name = "ID")]
    config_id: Option<String>,
    /// Interface the dataplane forwards on (afpacket backend). VIPs and local
    /// addresses must not be kernel addresses: dpvsd answers ARP for them.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Control socket path.
    #[arg(long, value_name = "PATH", default_value = ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Connection-table capacity per worker, for IPv4 and again for IPv6
    /// (NAT64 connections count as IPv6).
    #[arg(long, value_name = "N", default_value_t = 1 << 18)]
    conn_capacity: usize,
    /// Serve Prometheus metrics on ADDR:PORT (`GET /metrics`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Where SIGUSR1 writes the data dump [default: global_defs'
    /// `state_dump_file`, else /tmp/keepalived.data].
    #[arg(long, value_name = "FILE")]
    data_dump_file: Option<PathBuf>,
    /// Where SIGUSR2 writes the stats dump [default: global_defs'
    /// `stats_dump_file`, else /tmp/keepalived.stats].
    #[arg(long, value_name = "FILE")]
    stats_dump_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: dpvsd::logging::LogFormat,
    /// Unknown keywords are fatal (keepalived only warns about them).
    #[arg(long)]
    strict: bool,
    /// Read the configuration as `keepalived` 2.2.7 or as DPVS's fork (`dpvs`:
    /// 2.0.19 weight limits and absolute misc_dynamic weights).
    #[arg(long, value_name = "DIALECT", default_value = "keepalived")]
    dialect: Dialect,
    // ---- operations options (pid file, syslog facility, dump, backend, generators) ----
    /// Write the daemon's pid to FILE (removed at exit). Refuses to start if
    /// FILE names a running process.
    #[arg(short = 'p', long = "pid", value_name = "FILE")]
    pid: Option<PathBuf>,
    /// keepalived's syslog facility LOCAL0..LOCAL7 (0-7). Accepted for
    /// compatibility: dpvsd logs to stderr, which journald records.
    #[arg(short = 'S', long = "log-facility", value_name = "0-7",
          value_parser = clap::value_parser!(u8).range(0..=7))]
    log_facility: Option<u8>,
    /// Print the parsed configuration model to stderr before starting (with
    /// -t: and exit).
    #[arg(short = 'd', long = "dump-conf")]
    dump_conf: bool,
    /// Print a shell completion script for dpvsd and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    generate_completions: Option<dpvsd::gen::Shell>,
    /// Print dpvsd's man page (roff) and exit.
    #[arg(long, exclusive = true)]
    generate_man: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Packet I/O backend options.
#[derive(Debug, clap::Args)]
struct BackendArgs {
    /// Packet I/O backend: `afpacket` (on --interface) or `dpdk` (on
    /// --dpdk-port; needs a dpvsd built with `--features dpdk`).
    #[arg(long, value_name = "NAME", default_value = "afpacket", value_parser = ["afpacket", "dpdk"])]
    backend: String,
    /// DPDK port: a PCI address or a vdev, e.g. `net_af_packet0,iface=eth0`.
    /// Repeat it for several ports ("two-arm"): they are `dpdk0`, `dpdk1`,
    /// … in the order given, and keepalived.conf binds addresses to them
    /// as on DPVS (`vip_bind_dev dpdk1`, `10.0.1.10 dpdk1` in a
    /// `local_address_group`, a `vrrp_instance`'s `dpdk_interface dpdk1`);
    /// unbound addresses live on `dpdk0`.
    #[arg(long, value_name = "SPEC", required_if_eq("backend", "dpdk"))]
    dpdk_port: Vec<String>,
    /// Name of the kernel exception TAP created for the (first) DPDK port
    /// (DPVS's KNI): ARP, VRRP, OSPF, health checks and SSH go through it;
    /// give it the kernel's addresses with `ip addr`. Port N's TAP is named
    /// with N in place of the last number: `dpdk0` gives `dpdk1`,
    /// `dpdk0.kni` gives `dpdk1.kni`; `kni` gives `kni1`.
    #[arg(long, value_name = "IF")]
    dpdk_kni: Option<String>,
    /// Run DPDK without hugepages (`--no-huge`; slower, works anywhere).
    #[arg(long)]
    dpdk_no_huge: bool,
    /// Memory for DPDK without hugepages, in MB.
    #[arg(long, value_name = "MB", default_value_t = 512)]
    dpdk_mem: u32,
    /// Mbufs in the DPDK port's pool.
    #[arg(long, value_name = "N", default_value_t = 8191)]
    dpdk_mbufs: u32,
    /// Extra DPDK EAL argument, verbatim (repeatable), e.g. `--log-level=8`.
    #[arg(long = "dpdk-eal", value_name = "ARG", allow_hyphen_values = true)]
    dpdk_eal: Vec<String>,
    /// Pin the DPDK workers to these CPUs, one per worker in order
    /// (`taskset -c` syntax: `1,2` or `1-2`); default: not pinned.
    #[arg(long = "dpdk-cores", value_name = "LIST")]
    dpdk_cores: Option<CpuList>,
    /// Dataplane workers (DPDK: one rx/tx queue pair each, RSS across them).
    #[arg(long, value_name = "N", default_value_t = 1)]
    workers: u16,
}

impl BackendArgs {
    /// The backend and what it forwards on (`None`: nothing forwarded).
    fn resolve(&self, interface: Option<&String>) -> (BackendOptions, Option<String>) {
        match (self.backend.as_str(), self.dpdk_port.first()) {
            ("dpdk", Some(port)) => (
                BackendOptions::Dpdk(DpdkOptions {
                    ports: self.dpdk_port.clone(),
                    kni: self.dpdk_kni.clone(),
                    workers: self.workers.max(1),
                    hugepages: !self.dpdk_no_huge,
                    mem_mb: self.dpdk_mem,
                    mbufs: self.dpdk_mbufs,
                    eal_args: self.dpdk_eal.clone(),
                    cores: self.dpdk_cores.clone().map(|c| c.0).unwrap_or_default(),
                }),
                Some(port.clone()),
            ),
            _ => (BackendOptions::AfPacket, interface.cloned()),
        }
    }
}

/// Handles the options that print something and exit, or refuse early.
fn early_exit(cli: &Cli) -> Option<ExitCode> {
    use clap::CommandFactory;
    if let Some(shell) = cli.generate_completions {
        return Some(dpvsd::gen::print(Ok(dpvsd::gen::completions(
            Cli::command(),
            shell,
        ))));
    }
    if cli.generate_man {
        return Some(dpvsd::gen::print(dpvsd::gen::man(Cli::command(), "8")));
    }
    None
}

/// Writes the pid file unless it names another live process.
fn write_pid_file(path: &Path) -> Result<(), String> {
    let me = std::process::id();
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Ok(pid) = text.trim().parse::<i32>() {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            if alive && pid as u32 != me {
                return Err(format!(
                    "{}: process {pid} is running (another dpvsd?)",
                    path.display()
                ));
            }
        }
    }
    let tmp = path.with_extension(format!("tmp{me}"));
    std::fs::write(&tmp, format!("{me}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A dump file: the command line's, else the config's, else keepalived's default.
fn dump_file(cli: Option<&PathBuf>, config: Option<&str>, default: &str) -> PathBuf {
    cli.cloned()
        .or_else(|| config.map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(default))
}

fn config_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.use_file {
        return p.clone();
    }
    let primary = Path::new("/etc/dpvsd/keepalived.conf");
    if primary.exists() {
        primary.to_path_buf()
    } else {
        PathBuf::from("/etc/keepalived/keepalived.conf")
    }
}

/// keepalived -t's exit code for "errors or warnings found" (used for dpvsd's own assemble errors).
const EXIT_CONFIG_PROBLEMS: u8 = 5;

/// Counts allocations (relaxed atomics) for `dpvsd bench`'s `allocs=`.
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("bench") {
        let cli = dpvsd::bench::BenchCli::parse_from(std::env::args().skip(1));
        let allocs = || {
            let s = GLOBAL.stats();
            (s.allocations + s.reallocations) as u64
        };
        return match dpvsd::bench::run(&cli, &allocs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dpvsd bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    if let Some(code) = early_exit(&cli) {
        return code;
    }
    let path = config_path(&cli);
    let opts = LoadOptions {
        config_id: cli.config_id.clone(),
    };
    let mode = ParseMode {
        strict: cli.strict,
        dialect: cli.dialect,
    };
    let loaded = match load_file_with(&path, &opts, mode) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dpvsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    if cli.dump_conf {
        eprint!("{}", keepalived_parser::dump(&loaded.model));
    }
    let plan = assemble::assemble(&loaded.model);
    match &plan {
        Ok(p) => p.warnings.iter().for_each(|w| eprintln!("{w}")),
        Err(errors) => errors.iter().for_each(|e| eprintln!("{e}")),
    }
    if cli.config_test {
        let code = match keepalived_parser::config_test_exit_code(&loaded) {
            0 if plan.is_err() => EXIT_CONFIG_PROBLEMS,
            code => code,
        };
        return ExitCode::from(code);
    }
    let plan = match plan {
        Ok(p) if loaded.is_runnable() => p,
        _ => {
            eprintln!(
                "dpvsd: {}: configuration has errors; not starting",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let log = dpvsd::logging::init(cli.log_detail, cli.log_format);
    if !cli.dont_fork {
        if let Err(e) = nix::unistd::daemon(false, false) {
            eprintln!("dpvsd: cannot daemonize: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(pid) = &cli.pid {
        if let Err(e) = write_pid_file(pid) {
            eprintln!("dpvsd: pid file {e}");
            return ExitCode::FAILURE;
        }
    }
    let _ = cli.log_facility; // accepted: logs go to stderr/journald
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dpvsd-ctl")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dpvsd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (backend, interface) = cli.backend.resolve(cli.interface.as_ref());
    let dopts = daemon::Options {
        config_file: path,
        socket: cli.socket.clone(),
        interface,
        backend,
        conn_capacity: cli.conn_capacity,
        load: opts,
        mode,
        metrics_listen: cli.metrics_listen,
        data_dump_file: dump_file(
            cli.data_dump_file.as_ref(),
            loaded.model.global_defs.state_dump_file.as_deref(),
            dpvsd::dump::DATA_FILE,
        ),
        stats_dump_file: dump_file(
            cli.stats_dump_file.as_ref(),
            loaded.model.global_defs.stats_dump_file.as_deref(),
            dpvsd::dump::STATS_FILE,
        ),
        log: Some(log),
    };
    let result = runtime.block_on(daemon::run(dopts, plan));
    if let Some(pid) = &cli.pid {
        let _ = std::fs::remove_file(pid);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("dpvsd: {e}");
            ExitCode::FAILURE
        }
    }
}
