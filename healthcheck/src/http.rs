//! `HTTP_GET` and `SSL_GET`: a minimal HTTP/1.x client, as keepalived has.
//!
//! For each URL: connect (over TLS for `SSL_GET`, certificates not
//! verified), send `GET path` with `Host` and, per `http_protocol`,
//! `Connection: close`, read the status line and headers, and, when a digest
//! is configured, the body up to the end of the stream (or `Content-Length`).
//!
//! # Bounds
//!
//! * Each URL's whole exchange (connect, TLS, request, response) must finish
//!   within `connect_timeout`.
//! * Headers may take at most [`HTTP_MAX_HEADER`] bytes and a hashed body at most
//!   [`HTTP_MAX_BODY`]; the body is hashed as it streams in, never stored.
//! * Without a digest the body is not read at all.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::error::ProbeError;
use crate::spec::{HttpProtocol, HttpSpec, UrlSpec};
use crate::tcp;

/// The most response-header bytes read before giving up.
pub const HTTP_MAX_HEADER: usize = 16 * 1024;
/// The most body bytes hashed for a digest before giving up.
pub const HTTP_MAX_BODY: u64 = 1024 * 1024;

/// Fetches every URL of `http` from `target` in turn; the first failure is
/// the result.
pub(crate) async fn probe(
    target: SocketAddr,
    source: crate::tcp::Source,
    timeout: Duration,
    http: &HttpSpec,
    tls: bool,
) -> Result<(), ProbeError> {
    if http.urls.is_empty() {
        return Err(http_error("", "no url configured"));
    }
    for url in &http.urls {
        match tokio::time::timeout(timeout, fetch(target, source, http, url, tls)).await {
            Err(_elapsed) => {
                return Err(ProbeError::ResponseTimeout {
                    url: url.path.clone(),
                    after: timeout,
                })
            }
            Ok(result) => result?,
        }
    }
    Ok(())
}

fn http_error(url: &str, message: impl Into<String>) -> ProbeError {
    ProbeError::Http {
        url: url.to_owned(),
        message: message.into(),
    }
}

async fn fetch(
    target: SocketAddr,
    source: crate::tcp::Source,
    http: &HttpSpec,
    url: &UrlSpec,
    tls: bool,
) -> Result<(), ProbeError> {
    let vhost = url.virtualhost.as_deref().or(http.virtualhost.as_deref());
    let request = request(target, &url.path, vhost, http.http_protocol, tls)
        .map_err(|message| http_error(&url.path, message))?;
    let stream = tcp::connect(target, source).await?;
    if tls {
        let config = tls_config().map_err(|message| http_error(&url.path, message))?;
        let name = server_name(target, http, vhost);
        let stream = TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| http_error(&url.path, format!("TLS handshake: {e}")))?;
        exchange(stream, &request, url).await
    } else {
        exchange(stream, &request, url).await
    }
}

/// The request keepalived sends. Fails on a path or host that would break
/// the request line or headers.
fn request(
    target: SocketAddr,
    path: &str,
    vhost: Option<&str>,
    protocol: HttpProtocol,
    tls: bool,
) -> Result<Vec<u8>, String> {
    let unsafe_text =
        |s: &str| s.is_empty() || s.bytes().any(|b| b.is_ascii_control() || b == b' ');
    if unsafe_text(path) {
        return Err(format!("invalid url path {path:?}"));
    }
    let host = match vhost {
        Some(host) if unsafe_text(host) => return Err(format!("invalid virtualhost {host:?}")),
        Some(host) => host.to_owned(),
        None => {
            let default_port = if tls { 443 } else { 80 };
            let ip = match target.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            if target.port() == default_port {
                ip
            } else {
                format!("{ip}:{}", target.port())
            }
        }
    };
    let (version, close) = match protocol {
        HttpProtocol::Http10 => ("1.0", ""),
        HttpProtocol::Http10Close => ("1.0", "Connection: close\r\n"),
        HttpProtocol::Http11 => ("1.1", "Connection: close\r\n"),
    };
    Ok(format!(
        "GET {path} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n"
    )
    .into_bytes())
}

/// Sends `request` and checks the response against `url`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    url: &UrlSpec,
) -> Result<(), ProbeError> {
    let path = url.path.as_str();
    stream
        .write_all(request)
        .await
        .map_err(|e| http_error(path, format!("send: {e}")))?;
    stream
        .flush()
        .await
        .map_err(|e| http_error(path, format!("send: {e}")))?;

    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = header_end(&buf) {
            break end;
        }
        let room = HTTP_MAX_HEADER.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(http_error(
                path,
                format!("response headers exceed {HTTP_MAX_HEADER} bytes"),
            ));
        }
        let n = stream
            .read(&mut chunk[..room])
            .await
            .map_err(|e| http_error(path, format!("receive: {e}")))?;
        if n == 0 {
            let what = if buf.is_empty() {
                "connection closed without a response"
            } else {
                "connection closed before the end of the headers"
            };
            return Err(http_error(path, what));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (head, rest) = buf.split_at(header_end);
    let head = String::from_utf8_lossy(head);
    let status =
        status_code(&head).ok_or_else(|| http_error(path, "malformed HTTP status line"))?;
    if !url.accepts(status) {
        return Err(ProbeError::HttpStatus {
            url: path.to_owned(),
            status,
        });
    }
    let Some(expected) = url.digest else {
        return Ok(());
    };

    let limit = content_length(&head);
    let mut md5 = Md5::new();
    let mut len: u64 = 0;
    let mut feed = |bytes: &[u8]| -> Result<bool, ProbeError> {
        let take = match limit {
            Some(limit) => usize::try_from(limit.saturating_sub(len))
                .map_or(bytes.len(), |left| left.min(bytes.len())),
            None => bytes.len(),
        };
        let bytes = bytes.get(..take).unwrap_or(bytes);
        len = len.saturating_add(bytes.len() as u64);
        if len > HTTP_MAX_BODY {
            return Err(http_error(
                path,
                format!("response body exceeds {HTTP_MAX_BODY} bytes"),
            ));
        }
        md5.update(bytes);
        Ok(limit.is_some_and(|limit| len >= limit))
    };
    let mut done = feed(rest)?;
    while !done {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: end of body.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(http_error(path, format!("receive: {e}"))),
        };
        if n == 0 {
            if limit.is_some() {
                return Err(http_error(
                    path,
                    "connection closed before the end of the body",
                ));
            }
            break;
        }
        done = feed(&chunk[..n])?;
    }
    let actual: [u8; 16] = md5.finalize().into();
    if actual == expected {
        Ok(())
    } else {
        Err(ProbeError::Digest {
            url: path.to_owned(),
            actual: hex(&actual),
        })
    }
}

/// Lower-case hex, as keepalived's `genhash` prints digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The offset just past the blank line ending the headers.
fn header_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The status of `HTTP/1.x NNN reason`.
fn status_code(head: &str) -> Option<u16> {
    let mut words = head.lines().next()?.split_ascii_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..=999).contains(c))
}

fn content_length(head: &str) -> Option<u64> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// The SNI name: `sni_name`, else with `enable_sni` the virtual host. An IP
/// address (or no name) sends no SNI.
fn server_name(target: SocketAddr, http: &HttpSpec, vhost: Option<&str>) -> ServerName<'static> {
    let sni = http
        .sni_name
        .as_deref()
        .or(vhost.filter(|_| http.enable_sni));
    sni.and_then(|name| ServerName::try_from(name.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(target.ip().into()))
}

/// One client configuration for every `SSL_GET`: ring crypto, no
/// certificate verification (as keepalived), handshake signatures still
/// checked.
fn tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(NoCertificateVerification(Arc::clone(&provider)));
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Accepts any server certificate, like keepalived's `SSL_GET`.
#[derive(Debug)]
struct NoCertificateVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
    use tokio_rustls::TlsAcceptor;

    const TIMEOUT: Duration = Duration::from_secs(5);
    const HELLO_MD5: [u8; 16] = [
        0x5d, 0x41, 0x40, 0x2a, 0xbc, 0x4b, 0x2a, 0x76, 0xb9, 0x71, 0x9d, 0x91, 0x10, 0x17, 0xc5,
        0x92,
    ];

    /// What the test server does after reading a request.
    #[derive(Debug, Clone)]
    enum Reply {
        /// Sends these bytes and closes.
        Bytes(Vec<u8>),
        /// Closes before the headers are complete.
        CloseEarly,
        /// Keeps the connection open and says nothing.
        Silent,
        /// Sends headers, then body bytes until the client goes away.
        EndlessBody,
        /// Sends a status line, then header lines until the client goes away.
        EndlessHeaders,
    }

    /// Seen by the server per connection: the request and the TLS SNI name.
    type Seen = (String, Option<String>);

    /// A loopback HTTP (or HTTPS with `tls`) server replying `reply` to every
    /// connection.
    async fn server(
        reply: Reply,
        tls: Option<TlsAcceptor>,
    ) -> (SocketAddr, UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = unbounded_channel();
        tokio::spawn(async move {
            // Bounded: no test makes more than a few connections.
            for _ in 0..16 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (reply, tx, tls) = (reply.clone(), tx.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, None, reply, tx).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let sni = stream.get_ref().1.server_name().map(str::to_owned);
                            serve(stream, sni, reply, tx).await;
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        sni: Option<String>,
        reply: Reply,
        seen: UnboundedSender<Seen>,
    ) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        // Reads the request; something else (a TLS ClientHello) is answered
        // at once.
        while header_end(&request).is_none()
            && request.len() < 8192
            && (request.len() < 3 || request.starts_with(b"GET"))
        {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = seen.send((String::from_utf8_lossy(&request).into_owned(), sni));
        let endless = |head: &'static [u8], line: &'static [u8]| (head, line);
        let (head, line) = match reply {
            Reply::Bytes(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                return;
            }
            Reply::CloseEarly => {
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-").await;
                return;
            }
            Reply::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Reply::EndlessBody => endless(b"HTTP/1.0 200 OK\r\n\r\n", &[b'x'; 4096]),
            Reply::EndlessHeaders => {
                endless(b"HTTP/1.0 200 OK\r\n", b"X-Filler: aaaaaaaaaaaaaaaa\r\n")
            }
        };
        if stream.write_all(head).await.is_err() {
            return;
        }
        // Bounded: far more than the client's limits, stops when it leaves.
        for _ in 0..100_000 {
            if stream.write_all(line).await.is_err() {
                return;
            }
        }
    }

    fn http_spec(url: UrlSpec) -> HttpSpec {
        HttpSpec {
            urls: vec![url],
            ..HttpSpec::default()
        }
    }

    fn ok_reply(body: &str) -> Reply {
        Reply::Bytes(format!("HTTP/1.0 200 OK\r\nServer: test\r\n\r\n{body}").into_bytes())
    }

    fn with_digest(digest: [u8; 16]) -> UrlSpec {
        UrlSpec {
            digest: Some(digest),
            ..UrlSpec::new("/check")
        }
    }

    async fn get(addr: SocketAddr, http: &HttpSpec, timeout: Duration) -> Result<(), ProbeError> {
        probe(addr, Default::default(), timeout, http, false).await
    }

    #[tokio::test]
    async fn success_sends_keepalived_request() {
        let (addr, mut seen) = server(ok_reply("hello"), None).await;
        let mut http = http_spec(with_digest(HELLO_MD5));
        http.http_protocol = HttpProtocol::Http11;
        http.virtualhost = Some("www.example.com".into());
        assert_eq!(get(addr, &http, TIMEOUT).await, Ok(()));
        let (request, _) = seen.recv().await.expect("request seen");
        assert_eq!(
            request,
            "GET /check HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.com\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn every_url_must_pass() {
        let (addr, mut seen) = server(ok_reply("hello"), None).await;
        let mut other = UrlSpec::new("/other");
        other.status = vec![(404, 404)];
        other.virtualhost = Some("other.example.com".into());
        let http = HttpSpec {
            urls: vec![UrlSpec::new("/first"), other],
            virtualhost: Some("www.example.com".into()),
            ..HttpSpec::default()
        };
        assert_eq!(
            get(addr, &http, TIMEOUT).await,
            Err(ProbeError::HttpStatus {
                url: "/other".into(),
                status: 200
            })
        );
        let (first, _) = seen.recv().await.expect("first");
        let (second, _) = seen.recv().await.expect("second");
        assert!(first.starts_with("GET /first HTTP/1.0\r\n"), "{first}");
        assert!(first.contains("Host: www.example.com\r\n"), "{first}");
        assert!(second.contains("Host: other.example.com\r\n"), "{second}");
        assert_eq!(
            get(addr, &HttpSpec::default(), TIMEOUT).await,
            Err(http_error("", "no url configured"))
        );
    }

    #[tokio::test]
    async fn wrong_status_fails() {
        let (addr, _seen) = server(
            Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\n\r\n".to_vec()),
            None,
        )
        .await;
        let err = get(addr, &http_spec(UrlSpec::new("/")), TIMEOUT)
            .await
            .expect_err("503");
        assert_eq!(err.to_string(), "GET /: unexpected HTTP status 503");
    }

    #[tokio::test]
    async fn wrong_digest_fails_and_content_length_is_honoured() {
        let (addr, _seen) = server(ok_reply("hellO"), None).await;
        let err = get(addr, &http_spec(with_digest(HELLO_MD5)), TIMEOUT)
            .await
            .expect_err("digest");
        assert_eq!(
            err,
            ProbeError::Digest {
                url: "/check".into(),
                actual: hex(&Md5::digest(b"hellO")),
            }
        );
        // Only Content-Length bytes are hashed.
        let (addr, _seen) = server(
            Reply::Bytes(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello trailing".to_vec()),
            None,
        )
        .await;
        assert_eq!(
            get(addr, &http_spec(with_digest(HELLO_MD5)), TIMEOUT).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let (addr, _seen) = server(Reply::Silent, None).await;
        let short = Duration::from_millis(300);
        assert_eq!(
            get(addr, &http_spec(UrlSpec::new("/slow")), short).await,
            Err(ProbeError::ResponseTimeout {
                url: "/slow".into(),
                after: short
            })
        );
    }

    #[tokio::test]
    async fn early_close_and_garbage_fail() {
        let (addr, _seen) = server(Reply::CloseEarly, None).await;
        assert_eq!(
            get(addr, &http_spec(UrlSpec::new("/")), TIMEOUT).await,
            Err(http_error(
                "/",
                "connection closed before the end of the headers"
            ))
        );
        let (addr, _seen) = server(Reply::Bytes(Vec::new()), None).await;
        assert_eq!(
            get(addr, &http_spec(UrlSpec::new("/")), TIMEOUT).await,
            Err(http_error("/", "connection closed without a response"))
        );
        let (addr, _seen) = server(Reply::Bytes(b"SSH-2.0-x\r\n\r\n".to_vec()), None).await;
        assert_eq!(
            get(addr, &http_spec(UrlSpec::new("/")), TIMEOUT).await,
            Err(http_error("/", "malformed HTTP status line"))
        );
        // Body shorter than its Content-Length.
        let (addr, _seen) = server(
            Reply::Bytes(b"HTTP/1.0 200 OK\r\nContent-Length: 50\r\n\r\nhello".to_vec()),
            None,
        )
        .await;
        assert_eq!(
            get(addr, &http_spec(with_digest(HELLO_MD5)), TIMEOUT).await,
            Err(http_error(
                "/check",
                "connection closed before the end of the body"
            ))
        );
    }

    #[tokio::test]
    async fn hostile_servers_hit_the_size_limits() {
        let (addr, _seen) = server(Reply::EndlessHeaders, None).await;
        assert_eq!(
            get(addr, &http_spec(UrlSpec::new("/")), TIMEOUT).await,
            Err(http_error(
                "/",
                format!("response headers exceed {HTTP_MAX_HEADER} bytes")
            ))
        );
        let (addr, _seen) = server(Reply::EndlessBody, None).await;
        assert_eq!(
            get(addr, &http_spec(with_digest(HELLO_MD5)), TIMEOUT).await,
            Err(http_error(
                "/check",
                format!("response body exceeds {HTTP_MAX_BODY} bytes")
            ))
        );
        // Without a digest the body is not read at all.
        assert_eq!(
            get(addr, &http_spec(UrlSpec::new("/")), TIMEOUT).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn refused_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        assert_eq!(
            get(addr, &http_spec(UrlSpec::new("/")), TIMEOUT).await,
            Err(ProbeError::Refused)
        );
    }

    fn tls_acceptor() -> TlsAcceptor {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key.into())
            .expect("server config");
        TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test]
    async fn ssl_get_with_self_signed_certificate() {
        let (addr, mut seen) = server(ok_reply("hello"), Some(tls_acceptor())).await;
        let mut http = http_spec(with_digest(HELLO_MD5));
        http.virtualhost = Some("www.example.com".into());
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &http, true).await,
            Ok(())
        );
        let (request, sni) = seen.recv().await.expect("request");
        assert!(request.contains("Host: www.example.com\r\n"), "{request}");
        assert_eq!(sni, None, "no SNI without enable_sni");

        http.enable_sni = true;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &http, true).await,
            Ok(())
        );
        let (_, sni) = seen.recv().await.expect("request");
        assert_eq!(sni.as_deref(), Some("www.example.com"));

        // Wrong digest over TLS is still detected.
        let http = http_spec(with_digest([0; 16]));
        assert!(matches!(
            probe(addr, Default::default(), TIMEOUT, &http, true).await,
            Err(ProbeError::Digest { .. })
        ));
    }

    #[tokio::test]
    async fn ssl_get_against_plain_http_fails_cleanly() {
        let (addr, _seen) = server(Reply::Silent, None).await;
        let short = Duration::from_millis(300);
        // The server never answers the ClientHello: bounded by the timeout.
        assert!(matches!(
            probe(
                addr,
                Default::default(),
                short,
                &http_spec(UrlSpec::new("/")),
                true
            )
            .await,
            Err(ProbeError::ResponseTimeout { .. })
        ));
        let (addr, _seen) = server(ok_reply("hello"), None).await;
        let err = probe(
            addr,
            Default::default(),
            TIMEOUT,
            &http_spec(UrlSpec::new("/")),
            true,
        )
        .await
        .expect_err("not TLS");
        assert!(
            err.to_string().starts_with("GET /: TLS handshake:"),
            "{err}"
        );
    }

    fn target() -> SocketAddr {
        "10.0.0.2:8080".parse().expect("addr")
    }

    #[test]
    fn request_texts() {
        let req = |vhost, proto, tls| {
            String::from_utf8(request(target(), "/a?b", vhost, proto, tls).expect("valid"))
                .expect("utf8")
        };
        assert_eq!(
            req(None, HttpProtocol::Http10, false),
            "GET /a?b HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.2:8080\r\n\r\n"
        );
        assert_eq!(
            req(Some("www.example.com"), HttpProtocol::Http10Close, false),
            "GET /a?b HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.com\r\n\r\n"
        );
        assert!(req(None, HttpProtocol::Http11, true).starts_with("GET /a?b HTTP/1.1\r\n"));
        let v6: SocketAddr = "[2001:db8::1]:443".parse().expect("addr");
        let text =
            String::from_utf8(request(v6, "/", None, HttpProtocol::Http10, true).expect("valid"))
                .expect("utf8");
        assert!(text.contains("\r\nHost: [2001:db8::1]\r\n"), "{text}");
    }

    #[test]
    fn request_rejects_injection() {
        assert!(request(target(), "/a\r\nX: y", None, HttpProtocol::Http10, false).is_err());
        assert!(request(target(), "/a b", None, HttpProtocol::Http10, false).is_err());
        assert!(request(target(), "", None, HttpProtocol::Http10, false).is_err());
        assert!(request(target(), "/", Some("h\n"), HttpProtocol::Http10, false).is_err());
    }

    #[test]
    fn parses_status_and_length() {
        assert_eq!(status_code("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code("HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(status_code("HTTP/1.0 20 OK\r\n"), None);
        assert_eq!(status_code("SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(""), None);
        let head = "HTTP/1.1 200 OK\r\ncontent-LENGTH: 12\r\n\r\n";
        assert_eq!(content_length(head), Some(12));
        assert_eq!(content_length("HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(header_end(b"HTTP/1.0 200 OK\r\n\r\nbody"), Some(19));
        assert_eq!(header_end(b"HTTP/1.0 200 OK\n\nbody"), Some(17));
        assert_eq!(header_end(b"HTTP/1.0 200 OK\r\n"), None);
    }

    #[test]
    fn sni_choice() {
        let mut http = HttpSpec::default();
        let ip = ServerName::IpAddress(target().ip().into());
        assert_eq!(server_name(target(), &http, Some("www.example.com")), ip);
        http.enable_sni = true;
        assert_eq!(
            server_name(target(), &http, Some("www.example.com")),
            ServerName::try_from("www.example.com").expect("name")
        );
        assert_eq!(server_name(target(), &http, None), ip);
        http.sni_name = Some("sni.example.com".into());
        assert_eq!(
            server_name(target(), &http, Some("www.example.com")),
            ServerName::try_from("sni.example.com").expect("name")
        );
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
