//! `dpvsd`: parse the CLI → load the config → assemble → run → drain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use dpvsd::backend::{BackendOptions, DpdkOptions};
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
    /// Connection-table capacity per worker.
    #[arg(long, value_name = "N", default_value_t = 1 << 18)]
    conn_capacity: usize,
    /// Serve Prometheus metrics on ADDR:PORT (`GET /metrics`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Where SIGUSR1 writes the data dump (keepalived's `state_dump_file`).
    #[arg(long, value_name = "FILE", default_value = dpvsd::dump::DATA_FILE)]
    data_dump_file: PathBuf,
    /// Where SIGUSR2 writes the stats dump (keepalived's `stats_dump_file`).
    #[arg(long, value_name = "FILE", default_value = dpvsd::dump::STATS_FILE)]
    stats_dump_file: PathBuf,
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
    #[arg(long, value_name = "SPEC", required_if_eq("backend", "dpdk"))]
    dpdk_port: Option<String>,
    /// Name of the kernel exception TAP created for the DPDK port (DPVS's
    /// KNI): ARP, VRRP, OSPF, health checks and SSH go through it; give it
    /// the kernel's addresses with `ip addr`.
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
    /// Dataplane workers (DPDK: one rx/tx queue pair each, RSS across them).
    #[arg(long, value_name = "N", default_value_t = 1)]
    workers: u16,
}

impl BackendArgs {
    /// The backend and what it forwards on (`None`: nothing forwarded).
    fn resolve(&self, interface: Option<&String>) -> (BackendOptions, Option<String>) {
        match (self.backend.as_str(), &self.dpdk_port) {
            ("dpdk", Some(port)) => (
                BackendOptions::Dpdk(DpdkOptions {
                    port: port.clone(),
                    kni: self.dpdk_kni.clone(),
                    workers: self.workers.max(1),
                    hugepages: !self.dpdk_no_huge,
                    mem_mb: self.dpdk_mem,
                    mbufs: self.dpdk_mbufs,
                    eal_args: self.dpdk_eal.clone(),
                }),
                Some(port.clone()),
            ),
            _ => (BackendOptions::AfPacket, interface.cloned()),
        }
    }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        data_dump_file: cli.data_dump_file.clone(),
        stats_dump_file: cli.stats_dump_file.clone(),
        log: Some(log),
    };
    match runtime.block_on(daemon::run(dopts, plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("dpvsd: {e}");
            ExitCode::FAILURE
        }
    }
}
