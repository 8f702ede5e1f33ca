//! Logging: tracing to stderr (journald picks it up under systemd), as text
//! or JSON lines, with a filter that `dpvsctl log-level` can change at
//! runtime.

use std::io::IsTerminal;
use std::sync::Arc;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer};

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

type Setter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// Changes the running log filter.
#[derive(Clone)]
pub struct LogControl(Arc<Setter>);

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogControl")
    }
}

impl LogControl {
    /// Replaces the filter with `directives` (`EnvFilter` syntax: `debug`,
    /// `info,healthcheck=debug`, ...).
    ///
    /// # Errors
    /// The directives do not parse, or the subscriber is gone.
    pub fn set(&self, directives: &str) -> Result<(), String> {
        (self.0)(directives)
    }
}

/// Installs the global subscriber: `RUST_LOG` if set, else `debug` with
/// `detail` (`-D`), else `info`.
pub fn init(detail: bool, format: LogFormat) -> LogControl {
    let default = if detail { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => fmt.json().with_ansi(false).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    LogControl(Arc::new(move |directives: &str| {
        let f = EnvFilter::try_new(directives).map_err(|e| format!("bad log level: {e}"))?;
        handle
            .reload(f)
            .map_err(|e| format!("cannot change the log level: {e}"))
    }))
}
