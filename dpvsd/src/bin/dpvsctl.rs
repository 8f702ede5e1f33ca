//! `dpvsctl`: the control client of dpvsd.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dpvsd::ctl::{
    self, CtlCommand, ListInfo, OspfInfo, ReloadInfo, Request, Response, StatusInfo, VrrpInfo,
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
    /// Virtual and real servers with health, weights and counters (like `ipvsadm -ln --stats`).
    List,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.cmd {
        Cmd::Status => CtlCommand::Status,
        Cmd::List => CtlCommand::List,
        Cmd::Reload { dry_run } => CtlCommand::Reload { dry_run },
        Cmd::Vrrp => CtlCommand::Vrrp,
        Cmd::Ospf => CtlCommand::Ospf,
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
    let data = resp.data.unwrap_or_default();
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
        CtlCommand::List => serde_json::from_value::<ListInfo>(data).map(|l| render::list(&l)),
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
