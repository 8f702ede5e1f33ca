//! `DNS_CHECK`: one query over UDP, judged as keepalived 2.2.7 judges it
//! (`check_dns.c`, `dns_recv_thread`).
//!
//! The query has a random id, RD set, one question (`name`, `type`, class
//! IN). Datagrams shorter than a DNS header, with another id, or without the
//! QR bit are ignored and the checker keeps waiting. The first real response
//! decides: RCODE NOERROR passes, whatever the answer section holds (keepalived
//! looks at the header only), any other RCODE fails. Nothing usable within
//! `connect_timeout` fails, and an ICMP port unreachable is a refusal.
//!
//! hickory-proto builds the query and decodes the response header. The
//! resolver crate is not used: its cache and its own retry policy would hide
//! a server that stopped answering, and it does not expose the raw RCODE of a
//! single exchange with one chosen server.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::error::{IoStage, ProbeError};
use crate::spec::DnsSpec;

/// The size of a DNS header; shorter datagrams are ignored.
const HEADER_LEN: usize = 12;
/// Receive buffer: only the header is looked at, so a larger response is
/// simply truncated.
const RECV_BUF: usize = 512;

fn dns_error(message: impl Into<String>) -> ProbeError {
    ProbeError::Dns {
        message: message.into(),
    }
}

/// The query keepalived sends, with `id`.
pub(crate) fn query(spec: &DnsSpec, id: u16) -> Result<Vec<u8>, ProbeError> {
    let name = Name::from_ascii(&spec.name)
        .map_err(|e| dns_error(format!("invalid name {:?}: {e}", spec.name)))?;
    let mut question = Query::query(name, RecordType::from(spec.qtype.code()));
    question.set_query_class(DNSClass::IN);
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(question);
    message
        .to_vec()
        .map_err(|e| dns_error(format!("cannot encode the query: {e}")))
}

/// What one received datagram means for a query with `id`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a response to our query: keep waiting.
    Ignore,
    /// The check passed.
    Pass,
    /// The check failed with this RCODE.
    Fail(ResponseCode),
}

pub(crate) fn judge(datagram: &[u8], id: u16) -> Verdict {
    if datagram.len() < HEADER_LEN {
        return Verdict::Ignore;
    }
    let Ok(header) = Header::read(&mut BinDecoder::new(datagram)) else {
        return Verdict::Ignore;
    };
    if header.id() != id || header.message_type() != MessageType::Response {
        return Verdict::Ignore;
    }
    match header.response_code() {
        ResponseCode::NoError => Verdict::Pass,
        code => Verdict::Fail(code),
    }
}

pub(crate) async fn probe(
    target: SocketAddr,
    source: crate::tcp::Source,
    timeout: Duration,
    spec: &DnsSpec,
) -> Result<(), ProbeError> {
    let id: u16 = rand::random();
    let request = query(spec, id)?;
    match tokio::time::timeout(timeout, exchange(target, source, &request, id)).await {
        Err(_elapsed) => Err(ProbeError::NoReply { after: timeout }),
        Ok(result) => result,
    }
}

async fn exchange(
    target: SocketAddr,
    source: crate::tcp::Source,
    request: &[u8],
    id: u16,
) -> Result<(), ProbeError> {
    let socket = crate::udp::send_connected(target, source, request).await?;
    let mut buf = [0u8; RECV_BUF];
    // Ends on the first real response; the caller's timeout bounds the
    // ignored datagrams.
    loop {
        let len = socket
            .recv(&mut buf)
            .await
            .map_err(|e| ProbeError::io(IoStage::Receive, &e))?;
        match judge(buf.get(..len).unwrap_or(&buf), id) {
            Verdict::Ignore => continue,
            Verdict::Pass => return Ok(()),
            Verdict::Fail(code) => {
                return Err(dns_error(format!(
                    "response code {code} ({})",
                    u16::from(code)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DnsType;
    use tokio::net::UdpSocket;

    #[test]
    fn query_matches_keepalived() {
        let spec = DnsSpec {
            qtype: DnsType::A,
            name: "example.org".into(),
        };
        let bytes = query(&spec, 0x1234).expect("query");
        assert_eq!(
            bytes,
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header: RD, 1 question
                7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'o', b'r', b'g', 0, // name
                0, 1, 0, 1, // A, IN
            ]
        );
        let root = query(&DnsSpec::default(), 1).expect("root query");
        assert_eq!(&root[HEADER_LEN..], &[0, 0, 6, 0, 1], "root name, SOA, IN");
    }

    #[test]
    fn invalid_name_is_an_error() {
        let spec = DnsSpec {
            qtype: DnsType::A,
            name: "a..b".into(),
        };
        let err = query(&spec, 1).expect_err("empty label");
        assert!(err.to_string().starts_with("DNS: invalid name"), "{err}");
    }

    fn header(id: u16, flags: u16) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..2].copy_from_slice(&id.to_be_bytes());
        h[2..4].copy_from_slice(&flags.to_be_bytes());
        h
    }

    #[test]
    fn judging_responses() {
        assert_eq!(judge(&header(7, 0x8180), 7), Verdict::Pass);
        assert_eq!(
            judge(&header(7, 0x8183), 7),
            Verdict::Fail(ResponseCode::NXDomain)
        );
        assert_eq!(
            judge(&header(7, 0x8182), 7),
            Verdict::Fail(ResponseCode::ServFail)
        );
        assert_eq!(judge(&header(8, 0x8180), 7), Verdict::Ignore, "other id");
        assert_eq!(judge(&header(7, 0x0100), 7), Verdict::Ignore, "a query");
        assert_eq!(judge(&[0x00, 0x07, 0x81], 7), Verdict::Ignore, "short");
        assert_eq!(judge(&[], 7), Verdict::Ignore);
    }

    /// A responder answering each query with what `reply` makes of it
    /// (several datagrams possible), `count` times.
    async fn responder(
        reply: fn(&[u8]) -> Vec<Vec<u8>>,
        count: usize,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut last = Vec::new();
            let mut buf = [0u8; 512];
            for _ in 0..count {
                let (n, peer) = socket.recv_from(&mut buf).await.expect("recv");
                last = buf[..n].to_vec();
                for datagram in reply(&last) {
                    socket.send_to(&datagram, peer).await.expect("send");
                }
            }
            last
        });
        (addr, task)
    }

    /// The query turned into a response with `rcode` and, when `answer`, one
    /// A record for the question name.
    fn response(query: &[u8], rcode: u8, answer: bool) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] |= 0x80; // QR
        r[3] = 0x80 | rcode; // RA, RCODE
        if answer {
            r[7] = 1; // ANCOUNT
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        }
        r
    }

    const TIMEOUT: Duration = Duration::from_secs(5);
    const SHORT: Duration = Duration::from_millis(300);

    fn a_query() -> DnsSpec {
        DnsSpec {
            qtype: DnsType::A,
            name: "www.example.org".into(),
        }
    }

    #[tokio::test]
    async fn answer_passes_and_the_question_is_sent() {
        let (addr, task) = responder(|q| vec![response(q, 0, true)], 1).await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &a_query()).await,
            Ok(())
        );
        let sent = task.await.expect("responder");
        assert_eq!(&sent[2..4], &[0x01, 0x00], "RD only");
        assert_eq!(&sent[sent.len() - 4..], &[0, 1, 0, 1], "A, IN");
    }

    #[tokio::test]
    async fn noerror_without_answers_passes_as_in_keepalived() {
        let (addr, _task) = responder(|q| vec![response(q, 0, false)], 1).await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &a_query()).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn nxdomain_fails_with_the_code() {
        let (addr, _task) = responder(|q| vec![response(q, 3, false)], 1).await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &a_query()).await,
            Err(dns_error("response code Non-Existent Domain (3)"))
        );
    }

    #[tokio::test]
    async fn strangers_are_ignored_until_the_real_response() {
        let (addr, _task) = responder(
            |q| {
                let mut other_id = response(q, 3, false);
                other_id[0] ^= 0xff;
                let mut not_response = response(q, 3, false);
                not_response[2] &= 0x7f;
                vec![
                    b"garbage".to_vec(),
                    vec![0xff; 40],
                    other_id,
                    not_response,
                    response(q, 0, true),
                ]
            },
            1,
        )
        .await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &a_query()).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn garbage_only_times_out() {
        let (addr, _task) = responder(|_| vec![b"not dns at all".to_vec()], 1).await;
        assert_eq!(
            probe(addr, Default::default(), SHORT, &a_query()).await,
            Err(ProbeError::NoReply { after: SHORT })
        );
    }

    #[tokio::test]
    async fn silence_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = silent.local_addr().expect("addr");
        assert_eq!(
            probe(addr, Default::default(), SHORT, &a_query()).await,
            Err(ProbeError::NoReply { after: SHORT })
        );
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        drop(socket);
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &a_query()).await,
            Err(ProbeError::Refused)
        );
    }

    #[tokio::test]
    async fn ipv6_target() {
        let Ok(socket) = UdpSocket::bind("[::1]:0").await else {
            println!("SKIP: no IPv6 loopback");
            return;
        };
        let addr = socket.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = socket.recv_from(&mut buf).await.expect("recv");
            let reply = response(&buf[..n], 0, false);
            socket.send_to(&reply, peer).await.expect("send");
        });
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &DnsSpec::default()).await,
            Ok(())
        );
        task.await.expect("responder");
    }
}
