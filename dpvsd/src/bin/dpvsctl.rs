//! `dpvsctl`: the control client of dpvsd.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dpvsd::ctl::{
    self, CtlCommand, ListInfo, LogLevelInfo, OspfInfo, ReloadInfo, Request, Response, ServerRef,
    StatusInfo, VrrpInfo, WeightInfo,
};
use dpvsd::render;

/// Query and control a running dpvsd.
#[derive(Debug, Parser)]
#[command(name = "dpvsctl", version)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, value_name = "PATH", default_value = ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Daemon summary: version, uptime, config, backend, counts, drops.
    Status,
    /// Virtual and real servers (the layout of `ipvsadm -ln`, plus health).
    List {
        /// Counters (like `ipvsadm -ln --stats`).
        #[arg(long, conflicts_with = "rate")]
        stats: bool,
        /// Rates (like `ipvsadm -ln --rate`): CPS, packets and bytes per
        /// second, estimated by the dataplane as LVS does (2 s EWMA).
        #[arg(long)]
        rate: bool,
        /// Numeric output (always; accepted for ipvsadm habits).
        #[arg(short = 'n', long)]
        numeric: bool,
    },
    /// Per real server: each checker's state, last result and error,
    /// consecutive failures, last transition, probe latency; weights.
    Health,
    /// Set a real server's weight at runtime (overrides the configured and
    /// dynamic weight while the server is healthy; survives reloads that
    /// leave the server unchanged).
    Weight {
        /// Virtual server, VIP:PORT.
        vs: String,
        /// Real server, RIP:PORT.
        rs: String,
        weight: u32,
        /// TCP or UDP, when VIP:PORT has both.
        #[arg(long)]
        protocol: Option<String>,
    },
    /// Weight 0: no new connections, existing ones continue (quiescent).
    Drain {
        vs: String,
        rs: String,
        #[arg(long)]
        protocol: Option<String>,
    },
    /// Drop the runtime override: back to the configured/health weight.
    Enable {
        vs: String,
        rs: String,
        #[arg(long)]
        protocol: Option<String>,
    },
    /// Change the daemon's log filter: `info`, `debug`, `info,healthcheck=debug`, ...
    LogLevel { level: String },
    /// Print a shell completion script for dpvsctl.
    GenerateCompletions { shell: dpvsd::gen::Shell },
    /// Print dpvsctl's man page (roff).
    GenerateMan,
    /// The connection table (like `ipvsadm -lnc`). Filters take ADDR or ADDR:PORT.
    Conns {
        /// Only connections to this virtual server.
        #[arg(long)]
        vs: Option<String>,
        /// Only connections to this real server.
        #[arg(long)]
        rs: Option<String>,
        /// Only connections from this client.
        #[arg(long)]
        client: Option<String>,
        /// Numeric output (always; accepted for ipvsadm habits).
        #[arg(short = 'n', long)]
        numeric: bool,
    },
    /// Re-read the config file and apply only what changed (as SIGHUP does).
    /// A file with errors is rejected and the running configuration stays.
    Reload {
        /// Print the changes without applying them.
        #[arg(long)]
        dry_run: bool,
    },
    /// VRRP instances: state, effective priority and why, master, VIPs held,
    /// advert counters, drops by cause, last transition.
    Vrrp,
    /// OSPF announcer: neighbours and their states, originated LSAs, and
    /// which VIPs are announced and why.
    Ospf,
}

fn call(socket: &PathBuf, command: CtlCommand) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to {}: {e} (is dpvsd running?)",
            socket.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let req = serde_json::to_string(&Request {
        version: ctl::VERSION,
        command,
    })
    .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{req}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("receive: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("bad response from dpvsd: {e}"))
}

fn target(vs: String, rs: String, protocol: Option<String>) -> ServerRef {
    ServerRef { vs, protocol, rs }
}

/// How the answer is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
enum View {
    Plain,
    Stats,
    Health,
}

fn list_info(socket: &PathBuf) -> Result<ListInfo, String> {
    let resp = call(socket, CtlCommand::List)?;
    if !resp.ok {
        return Err(resp.error.unwrap_or_else(|| "request failed".into()));
    }
    serde_json::from_value(resp.data.unwrap_or_default())
        .map_err(|e| format!("unexpected response: {e}"))
}

/// `list --rate`: the dataplane's estimated rates.
fn rate(socket: &PathBuf, json: bool) -> ExitCode {
    let result = list_info(socket).map(|l| render::RateInfo::of(&l));
    match result {
        Ok(r) if json => {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            print!("{}", render::rates(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dpvsctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut view = View::Plain;
    let command = match cli.cmd {
        Cmd::Status => CtlCommand::Status,
        Cmd::GenerateCompletions { shell } => {
            use clap::CommandFactory;
            return dpvsd::gen::print(Ok(dpvsd::gen::completions(Cli::command(), shell)));
        }
        Cmd::GenerateMan => {
            use clap::CommandFactory;
            return dpvsd::gen::print(dpvsd::gen::man(Cli::command(), "8"));
        }
        Cmd::List {
            stats,
            rate: rates,
            numeric: _,
        } => {
            if rates {
                return rate(&cli.socket, cli.json);
            }
            if stats {
                view = View::Stats;
            }
            CtlCommand::List
        }
        Cmd::Health => {
            view = View::Health;
            CtlCommand::List
        }
        Cmd::Reload { dry_run } => CtlCommand::Reload { dry_run },
        Cmd::Vrrp => CtlCommand::Vrrp,
        Cmd::Ospf => CtlCommand::Ospf,
        Cmd::Weight {
            vs,
            rs,
            weight,
            protocol,
        } => CtlCommand::Weight {
            target: target(vs, rs, protocol),
            weight,
        },
        Cmd::Drain { vs, rs, protocol } => CtlCommand::Weight {
            target: target(vs, rs, protocol),
            weight: 0,
        },
        Cmd::Enable { vs, rs, protocol } => CtlCommand::Enable {
            target: target(vs, rs, protocol),
        },
        Cmd::LogLevel { level } => CtlCommand::LogLevel { level },
        Cmd::Conns {
            vs,
            rs,
            client,
            numeric: _,
        } => CtlCommand::Conns { vs, rs, client },
    };
    let resp = match call(&cli.socket, command.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dpvsctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !resp.ok {
        eprintln!(
            "dpvsctl: {}",
            resp.error.unwrap_or_else(|| "request failed".into())
        );
        return ExitCode::FAILURE;
    }
    let mut data = resp.data.unwrap_or_default();
    if view == View::Health {
        let entries = serde_json::from_value::<ListInfo>(data)
            .map(|l| render::health_entries(&l))
            .unwrap_or_default();
        if !cli.json {
            print!("{}", render::health(&entries));
            return ExitCode::SUCCESS;
        }
        data = serde_json::to_value(entries).unwrap_or_default();
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&data).unwrap_or_default()
        );
        // Only a rejected reload fails; `error` in a status (e.g. an
        // announcer waiting for its interface) is information.
        let rejected = matches!(command, CtlCommand::Reload { .. })
            && data.get("error").is_some_and(|e| !e.is_null());
        return if rejected {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = match command {
        CtlCommand::Status => {
            serde_json::from_value::<StatusInfo>(data).map(|s| render::status(&s))
        }
        CtlCommand::List => serde_json::from_value::<ListInfo>(data).map(|l| match view {
            View::Stats => render::list_stats(&l),
            _ => render::list(&l),
        }),
        CtlCommand::Weight { .. } | CtlCommand::Enable { .. } => {
            serde_json::from_value::<WeightInfo>(data).map(|w| render::weight(&w))
        }
        CtlCommand::Conns { .. } => {
            serde_json::from_value::<dpvsd::ctl::ConnsInfo>(data).map(|c| render::conns(&c))
        }
        CtlCommand::LogLevel { .. } => {
            serde_json::from_value::<LogLevelInfo>(data).map(|l| render::log_level(&l))
        }
        CtlCommand::Vrrp => serde_json::from_value::<VrrpInfo>(data).map(|v| render::vrrp(&v)),
        CtlCommand::Ospf => serde_json::from_value::<OspfInfo>(data).map(|o| render::ospf(&o)),
        CtlCommand::Reload { .. } => match serde_json::from_value::<ReloadInfo>(data) {
            Ok(r) => {
                print!("{}", render::reload(&r));
                return if r.error.is_none() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                };
            }
            Err(e) => Err(e),
        },
    };
    match text {
        Ok(t) => {
            print!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dpvsctl: unexpected response: {e}");
            ExitCode::FAILURE
        }
    }
}
