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
    /// Sending data.
    Send,
    /// Receiving data.
    Receive,
}

impl fmt::Display for IoStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoStage::Socket => "socket",
            IoStage::Bind => "bind",
            IoStage::Connect => "connect",
            IoStage::Send => "send",
            IoStage::Receive => "receive",
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
    /// The socket could not be bound to the `bind_if` interface (it does
    /// not exist, its name is too long, or `CAP_NET_RAW` is missing).
    #[error("cannot bind to interface {interface}: {message}")]
    BindDevice {
        /// The configured `bind_if`.
        interface: String,
        /// Why, e.g. `"No such device (os error 19)"`.
        message: String,
    },
    /// An `HTTP_GET`/`SSL_GET` exchange did not complete within
    /// `connect_timeout`.
    #[error("GET {url}: no complete response within {after:?}")]
    ResponseTimeout {
        /// The URL path.
        url: String,
        /// The configured `connect_timeout`.
        after: Duration,
    },
    /// An HTTP status outside the accepted ranges.
    #[error("GET {url}: unexpected HTTP status {status}")]
    HttpStatus {
        /// The URL path.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The MD5 of the body differs from the configured digest.
    #[error("GET {url}: body MD5 {actual} does not match the digest")]
    Digest {
        /// The URL path.
        url: String,
        /// The MD5 of the body received, in lower-case hex.
        actual: String,
    },
    /// Any other `HTTP_GET`/`SSL_GET` failure (I/O, TLS, malformed or
    /// oversized response, no URL configured).
    #[error("GET {url}: {message}")]
    Http {
        /// The URL path (empty when none is configured).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A `MISC_CHECK` script could not be started.
    #[error("cannot run {program}: {message}")]
    ScriptStart {
        /// The program.
        program: String,
        /// Why (not found, permission denied, unknown user...).
        message: String,
    },
    /// A `MISC_CHECK` script exited with a failing status.
    #[error("exit status {code}")]
    ScriptExit {
        /// The exit status.
        code: i32,
    },
    /// A `MISC_CHECK` script was killed by a signal.
    #[error("killed by signal {signal}")]
    ScriptSignal {
        /// The signal number.
        signal: i32,
    },
    /// A `MISC_CHECK` script ran past its timeout (its process group was
    /// terminated).
    #[error("script timeout after {after:?}")]
    ScriptTimeout {
        /// The effective timeout.
        after: Duration,
    },
    /// `UDP_CHECK` with `require_reply`: nothing came back in time.
    #[error("no reply within {after:?}")]
    NoReply {
        /// The configured `connect_timeout`.
        after: Duration,
    },
    /// `UDP_CHECK`: the reply did not match `require_reply` or the lengths.
    #[error("unexpected reply: {message}")]
    BadReply {
        /// What did not match.
        message: String,
    },
    /// `DNS_CHECK`: an error response or an unusable query name.
    #[error("DNS: {message}")]
    Dns {
        /// What went wrong, e.g. `"response code NXDomain (3)"`.
        message: String,
    },
    /// `SMTP_CHECK`: an unexpected, malformed or missing reply.
    #[error("SMTP: {message}")]
    Smtp {
        /// What went wrong, e.g. `"banner 554 (expected 220)"`.
        message: String,
    },
    /// `PING_CHECK`: no echo reply or an ICMP error.
    #[error("ping: {message}")]
    Ping {
        /// What went wrong.
        message: String,
    },
    /// `FILE_CHECK`: the tracked file's value puts the checker in fault.
    #[error("track file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why, e.g. `"value 3 with weight 0 is a fault"`.
        message: String,
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
    /// Wraps an I/O error from `stage`; a refused connect (or, for UDP, a
    /// receive failing on an ICMP port unreachable) becomes
    /// [`ProbeError::Refused`].
    pub(crate) fn io(stage: IoStage, err: &io::Error) -> Self {
        if matches!(stage, IoStage::Connect | IoStage::Receive)
            && err.kind() == io::ErrorKind::ConnectionRefused
        {
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
