//! `dpvsd`: parse the CLI → load the config → assemble → run → drain.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
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
    /// Unknown keywords are fatal (keepalived only warns about them).
    #[arg(long)]
    strict: bool,
    /// Read the configuration as `keepalived` 2.2.7 or as DPVS's fork (`dpvs`:
    /// 2.0.19 weight limits and absolute misc_dynamic weights).
    #[arg(long, value_name = "DIALECT", default_value = "keepalived")]
    dialect: Dialect,
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

fn init_logging(detail: bool) {
    let default = if detail { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
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
    init_logging(cli.log_detail);
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
    let dopts = daemon::Options {
        config_file: path,
        socket: cli.socket.clone(),
        interface: cli.interface.clone(),
        conn_capacity: cli.conn_capacity,
        load: opts,
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
