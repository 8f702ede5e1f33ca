//! `SMTP_CHECK`: keepalived's conversation (`check_smtp.c`).
//!
//! Connect, read the greeting (must be 220), send `HELO helo_name`, read the
//! reply (must be 250), send `QUIT`, and read one more reply line, whatever
//! its code. A connection closed before a complete reply fails.
//!
//! # Differences and bounds
//!
//! * keepalived looks at the first line of whatever one `read` returned; a
//!   multi-line reply (`220-...` continuation lines) is read to its last line
//!   here, so a multi-line banner does not depend on packet boundaries. The
//!   code of the last line decides.
//! * Each reply line may be at most [`SMTP_MAX_LINE`] bytes (keepalived's
//!   buffer size; it fails on longer lines too), and a reply at most
//!   [`SMTP_MAX_REPLY_LINES`] lines.
//! * The whole conversation must finish within `connect_timeout` (keepalived
//!   applies it to each step).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::error::{IoStage, ProbeError};
use crate::spec::SmtpSpec;
use crate::tcp;

/// The longest reply line accepted, CRLF included.
pub const SMTP_MAX_LINE: usize = 512;
/// The most lines one multi-line reply may have.
pub const SMTP_MAX_REPLY_LINES: usize = 64;

fn smtp_error(message: impl Into<String>) -> ProbeError {
    ProbeError::Smtp {
        message: message.into(),
    }
}

pub(crate) async fn probe(
    target: SocketAddr,
    source: crate::tcp::Source,
    timeout: Duration,
    spec: &SmtpSpec,
) -> Result<(), ProbeError> {
    let name = &spec.helo_name;
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_control()) {
        return Err(smtp_error(format!("invalid helo_name {name:?}")));
    }
    match tokio::time::timeout(timeout, converse(target, source, name)).await {
        Err(_elapsed) => Err(ProbeError::Timeout { after: timeout }),
        Ok(result) => result,
    }
}

async fn converse(
    target: SocketAddr,
    source: crate::tcp::Source,
    helo_name: &str,
) -> Result<(), ProbeError> {
    let stream = tcp::connect(target, source).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(SMTP_MAX_LINE, read);

    expect(&mut read, "greeting", 220).await?;
    write
        .write_all(format!("HELO {helo_name}\r\n").as_bytes())
        .await
        .map_err(|e| ProbeError::io(IoStage::Send, &e))?;
    expect(&mut read, "HELO reply", 250).await?;
    write
        .write_all(b"QUIT\r\n")
        .await
        .map_err(|e| ProbeError::io(IoStage::Send, &e))?;
    reply(&mut read, "QUIT reply").await.map(|_code| ())
}

async fn expect<R: AsyncRead + Unpin>(
    read: &mut BufReader<R>,
    what: &str,
    want: u16,
) -> Result<(), ProbeError> {
    match reply(read, what).await? {
        code if code == want => Ok(()),
        code => Err(smtp_error(format!("{what} {code} (expected {want})"))),
    }
}

/// Reads one reply (its continuation lines too) and returns its code.
async fn reply<R: AsyncRead + Unpin>(
    read: &mut BufReader<R>,
    what: &str,
) -> Result<u16, ProbeError> {
    let mut line = Vec::with_capacity(SMTP_MAX_LINE);
    for _ in 0..SMTP_MAX_REPLY_LINES {
        line.clear();
        // `take` bounds the line: one byte more than allowed tells an
        // over-long line from a full one.
        let limit = u64::try_from(SMTP_MAX_LINE).unwrap_or(u64::MAX) + 1;
        let n = (&mut *read)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| ProbeError::io(IoStage::Receive, &e))?;
        if n > SMTP_MAX_LINE {
            return Err(smtp_error(format!(
                "{what}: line longer than {SMTP_MAX_LINE} bytes"
            )));
        }
        if line.last() != Some(&b'\n') {
            return Err(smtp_error(format!(
                "{what}: connection closed before a complete line"
            )));
        }
        let code = parse_code(&line).ok_or_else(|| {
            smtp_error(format!(
                "{what}: malformed line {:?}",
                String::from_utf8_lossy(&line).trim_end()
            ))
        })?;
        if line.get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
    Err(smtp_error(format!(
        "{what}: more than {SMTP_MAX_REPLY_LINES} lines"
    )))
}

/// The three-digit code at the start of a reply line.
fn parse_code(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits
        .iter()
        .try_fold(0u16, |acc, d| Some(acc * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes() {
        assert_eq!(parse_code(b"220 mail ESMTP\r\n"), Some(220));
        assert_eq!(parse_code(b"250-first\r\n"), Some(250));
        assert_eq!(parse_code(b"554\r\n"), Some(554));
        assert_eq!(parse_code(b"2x0 no\r\n"), None);
        assert_eq!(parse_code(b"22"), None);
    }

    async fn read_reply(input: &[u8]) -> Result<u16, ProbeError> {
        let mut reader = BufReader::new(input);
        reply(&mut reader, "greeting").await
    }

    #[tokio::test]
    async fn multi_line_replies_are_read_to_the_end() {
        assert_eq!(
            read_reply(b"220-one\r\n220-two\r\n220 three\r\n").await,
            Ok(220)
        );
        assert_eq!(read_reply(b"220-one\r\n554 no\r\n").await, Ok(554));
    }

    #[tokio::test]
    async fn bad_replies_fail() {
        assert_eq!(
            read_reply(b"220 no newline").await,
            Err(smtp_error(
                "greeting: connection closed before a complete line"
            ))
        );
        assert_eq!(
            read_reply(b"hello\r\n").await,
            Err(smtp_error("greeting: malformed line \"hello\""))
        );
        let long = [b'2'; SMTP_MAX_LINE + 10];
        assert_eq!(
            read_reply(&long).await,
            Err(smtp_error("greeting: line longer than 512 bytes"))
        );
        let endless = b"220-x\r\n".repeat(SMTP_MAX_REPLY_LINES + 1);
        assert_eq!(
            read_reply(&endless).await,
            Err(smtp_error("greeting: more than 64 lines"))
        );
    }

    use tokio::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A one-connection SMTP server that sends `banner`, then answers HELO
    /// with `helo_reply` and QUIT with 221; returns what the client sent.
    async fn server(
        banner: &'static [u8],
        helo_reply: &'static [u8],
    ) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut seen = String::new();
            if write.write_all(banner).await.is_err() || helo_reply.is_empty() {
                return seen;
            }
            for reply in [helo_reply, b"221 bye\r\n".as_slice()] {
                let mut line = String::new();
                match read.read_line(&mut line).await {
                    Ok(0) | Err(_) => return seen,
                    Ok(_) => seen.push_str(&line),
                }
                if write.write_all(reply).await.is_err() {
                    return seen;
                }
            }
            seen
        });
        (addr, task)
    }

    fn helo(name: &str) -> SmtpSpec {
        SmtpSpec {
            helo_name: name.into(),
        }
    }

    #[tokio::test]
    async fn good_server_passes_with_keepalived_conversation() {
        let (addr, task) = server(
            b"220-mx.test ESMTP\r\n220 ready\r\n",
            b"250 mx.test greets you\r\n",
        )
        .await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &helo("lb.test")).await,
            Ok(())
        );
        assert_eq!(task.await.expect("server"), "HELO lb.test\r\nQUIT\r\n");
    }

    #[tokio::test]
    async fn default_helo_name_is_keepalived_s() {
        let (addr, task) = server(b"220 ok\r\n", b"250 ok\r\n").await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &SmtpSpec::default()).await,
            Ok(())
        );
        assert!(task
            .await
            .expect("server")
            .starts_with("HELO smtpchecker.keepalived.org\r\n"));
    }

    #[tokio::test]
    async fn rejecting_banner_fails() {
        let (addr, _task) = server(b"554 go away\r\n", b"").await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &helo("lb")).await,
            Err(smtp_error("greeting 554 (expected 220)"))
        );
    }

    #[tokio::test]
    async fn rejected_helo_fails() {
        let (addr, _task) = server(b"220 ok\r\n", b"501 bad name\r\n").await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &helo("lb")).await,
            Err(smtp_error("HELO reply 501 (expected 250)"))
        );
    }

    #[tokio::test]
    async fn garbage_banner_fails() {
        let (addr, _task) = server(b"SSH-2.0-OpenSSH\r\n", b"").await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &helo("lb")).await,
            Err(smtp_error("greeting: malformed line \"SSH-2.0-OpenSSH\""))
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let short = Duration::from_millis(300);
        // Accepted by the kernel (backlog), never answered.
        assert_eq!(
            probe(addr, Default::default(), short, &helo("lb")).await,
            Err(ProbeError::Timeout { after: short })
        );
    }

    #[tokio::test]
    async fn closed_port_is_refused_and_bad_names_are_refused_early() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &helo("lb")).await,
            Err(ProbeError::Refused)
        );
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &helo("lb\r\nRCPT")).await,
            Err(smtp_error("invalid helo_name \"lb\\r\\nRCPT\""))
        );
    }
}
