//! Why a probe failed.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The step of a probe that hit an I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStage {
    /// Creating the socket.
    Socket,
    /// Binding it to `bindto`.
    Bind,
    /// Connecting to the target.
    Connect,
}

impl fmt::Display for IoStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoStage::Socket => "socket",
            IoStage::Bind => "bind",
            IoStage::Connect => "connect",
        })
    }
}

/// A failed probe. Its `Display` text is what status and event reasons show.
///
/// Values are cheap to clone and compare so that the sans-IO state can keep
/// the last one and tests can match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The target actively refused the connection (RST).
    #[error("connection refused")]
    Refused,
    /// The connection did not complete within `connect_timeout`.
    #[error("connect timeout after {after:?}")]
    Timeout {
        /// The configured `connect_timeout`.
        after: Duration,
    },
    /// `bindto` and the target are of different address families.
    #[error("cannot bind to {bind} to reach {target}: address families differ")]
    FamilyMismatch {
        /// The configured `bindto`.
        bind: IpAddr,
        /// The target.
        target: SocketAddr,
    },
    /// Any other I/O error.
    #[error("{stage}: {message}")]
    Io {
        /// Which step failed.
        stage: IoStage,
        /// The error kind, for programmatic matching.
        kind: io::ErrorKind,
        /// The operating system's text.
        message: String,
    },
}

impl ProbeError {
    /// Wraps an I/O error from `stage`; a refused connect becomes
    /// [`ProbeError::Refused`].
    pub(crate) fn io(stage: IoStage, err: &io::Error) -> Self {
        if stage == IoStage::Connect && err.kind() == io::ErrorKind::ConnectionRefused {
            return ProbeError::Refused;
        }
        ProbeError::Io {
            stage,
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_texts() {
        assert_eq!(ProbeError::Refused.to_string(), "connection refused");
        assert_eq!(
            ProbeError::Timeout {
                after: Duration::from_secs(3)
            }
            .to_string(),
            "connect timeout after 3s"
        );
        assert_eq!(
            ProbeError::Timeout {
                after: Duration::from_millis(200)
            }
            .to_string(),
            "connect timeout after 200ms"
        );
    }

    #[test]
    fn io_maps_refused_only_on_connect() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            ProbeError::io(IoStage::Connect, &refused),
            ProbeError::Refused
        );
        let err = ProbeError::io(IoStage::Bind, &refused);
        assert!(matches!(
            err,
            ProbeError::Io {
                stage: IoStage::Bind,
                kind: io::ErrorKind::ConnectionRefused,
                ..
            }
        ));
        assert!(err.to_string().starts_with("bind: "));
    }
}
