//! A tiny authoritative DNS server on a loopback address of its own, for
//! the names of a [`FederatedPair`](crate::FederatedPair): `A` records and
//! `_xmpp-server._tcp` `SRV` records, UDP only, answers from a table the
//! test fills. Every other name is `NXDOMAIN`; nothing is forwarded.
//!
//! Prosody's resolver (`net.dns`, no `lua-unbound` on Debian by default)
//! asks the nameservers of `/etc/resolv.conf` on port 53 and reads no hosts
//! file; ejabberd asks `inet_res`, whose nameservers come from its inetrc.
//! Both therefore need a real DNS server, on port 53. Each server gets its
//! own random `127.x.y.z`, so pairs in parallel tests do not collide.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::{annotate, lock};

/// The time to live of every answer: short, so that a record changed by the
/// test is seen almost at once, but not zero (some resolvers treat 0
/// specially).
const TTL: u32 = 1;
/// How often the serving thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How many random loopback addresses are tried before giving up.
const ADDRESS_ATTEMPTS: usize = 32;

/// What the server answers.
#[derive(Default)]
struct Zone {
    /// Lower-cased name → address.
    a: HashMap<String, Ipv4Addr>,
    /// Lower-cased `_service._proto.name` → (port, target host).
    srv: HashMap<String, (u16, String)>,
}

/// A running DNS server; stopped when dropped.
pub(crate) struct DnsServer {
    addr: Ipv4Addr,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP port 53 on a random free `127.x.y.z` (needs root or
    /// `CAP_NET_BIND_SERVICE`) and serves an empty zone.
    pub(crate) fn start() -> io::Result<DnsServer> {
        let mut seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32)
            ^ crate::util::unique_id().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut last_err = None;
        for _ in 0..ADDRESS_ATTEMPTS {
            // xorshift: good enough to spread pairs over 127.0.0.0/8.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let [b1, b2, b3, ..] = seed.to_le_bytes();
            // Avoid 127.0.0.x (127.0.0.1, systemd's 127.0.0.53) and the
            // network and broadcast-looking ends.
            let addr = Ipv4Addr::new(127, b1.clamp(1, 254), b2, b3.clamp(2, 254));
            match UdpSocket::bind(SocketAddrV4::new(addr, 53)) {
                Ok(socket) => return Self::serve(addr, socket),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
                Err(e) => {
                    return Err(annotate(
                        e,
                        &format!("cannot bind the test DNS server to {addr}:53 (needs root)"),
                    ))
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no loopback address for DNS")))
    }

    fn serve(addr: Ipv4Addr, socket: UdpSocket) -> io::Result<DnsServer> {
        socket.set_read_timeout(Some(POLL))?;
        let zone = Arc::new(Mutex::new(Zone::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (zone, stop) = (zone.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("test-dns-{addr}"))
                .spawn(move || {
                    let mut buf = [0u8; 1500];
                    while !stop.load(Ordering::Relaxed) {
                        let (n, peer) = match socket.recv_from(&mut buf) {
                            Ok(x) => x,
                            Err(_) => continue,
                        };
                        let reply = answer(&buf[..n], &lock(&zone));
                        if let Some(reply) = reply {
                            let _ = socket.send_to(&reply, peer);
                        }
                    }
                })
                .map_err(|e| annotate(e, "cannot spawn the DNS thread"))?
        };
        Ok(DnsServer {
            addr,
            zone,
            stop,
            thread: Some(thread),
        })
    }

    /// Where the server listens (UDP port 53).
    pub(crate) fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Publishes an XMPP server for `domain` at `addr`: an `A` record for
    /// `domain` and the `SRV` record `_xmpp-server._tcp.<domain>` with
    /// `addr`'s port. Replaces earlier records of `domain`.
    ///
    /// The SRV target is the address itself written as a name
    /// (`127.0.0.1`), not `domain`: ejabberd looks SRV targets up with the
    /// operating system's resolver (`net:getaddrinfo`, i.e. the machine's
    /// `/etc/hosts` and DNS), which the test does not control, whereas an
    /// address literal needs no lookup. Prosody takes it as a literal too.
    pub(crate) fn add_xmpp_server(&self, domain: &str, addr: SocketAddrV4) {
        let name = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut zone = lock(&self.zone);
        zone.a.insert(name.clone(), *addr.ip());
        zone.srv.insert(
            format!("_xmpp-server._tcp.{name}"),
            (addr.port(), addr.ip().to_string()),
        );
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TYPE_A: u16 = 1;
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;

/// The reply to one query datagram, or `None` for what is not a query
/// (too short to echo an id, or a response).
fn answer(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let id = [query[0], query[1]];
    let opcode = (query[2] >> 3) & 0x0f;
    let rd = query[2] & 0x01;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    let header = |rcode: u8, ancount: u16, qd: u16| {
        let mut h = Vec::with_capacity(512);
        h.extend_from_slice(&id);
        // QR, AA (we are authoritative for everything we know), RD echoed;
        // RA: we are the resolver of whoever asks us (libunbound, which
        // Prosody uses when lua-unbound is installed, takes a forwarder
        // without RA for a broken one).
        h.push(0x80 | 0x04 | rd);
        h.push(0x80 | rcode);
        h.extend_from_slice(&qd.to_be_bytes());
        h.extend_from_slice(&ancount.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]);
        h
    };
    if opcode != 0 {
        return Some(header(RCODE_NOTIMP, 0, 0));
    }
    if qdcount != 1 {
        return Some(header(RCODE_FORMERR, 0, 0));
    }
    let Some((name, end)) = read_name(query, 12) else {
        return Some(header(RCODE_FORMERR, 0, 0));
    };
    let Some(fixed) = query.get(end..end + 4) else {
        return Some(header(RCODE_FORMERR, 0, 0));
    };
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let question = &query[12..end + 4];

    let name = name.to_ascii_lowercase();
    // An address written as a name (our SRV targets, see
    // `add_xmpp_server`) stands for itself: Prosody looks the target up
    // with a final dot, which keeps it from taking it as a literal.
    let literal = name.parse::<Ipv4Addr>().ok();
    let known = literal.is_some() || zone.a.contains_key(&name) || zone.srv.contains_key(&name);
    let mut records: Vec<Vec<u8>> = Vec::new();
    if qclass == CLASS_IN {
        if let (TYPE_A, Some(ip)) = (qtype, literal.as_ref().or(zone.a.get(&name))) {
            records.push(record(TYPE_A, &ip.octets()));
        }
        if let (TYPE_SRV, Some((port, target))) = (qtype, zone.srv.get(&name)) {
            let mut data = vec![0, 0, 0, 0];
            data.extend_from_slice(&port.to_be_bytes());
            data.extend_from_slice(&encode_name(target));
            records.push(record(TYPE_SRV, &data));
        }
    }
    let rcode = if known { 0 } else { RCODE_NXDOMAIN };
    let mut reply = header(rcode, records.len() as u16, 1);
    reply.extend_from_slice(question);
    for r in records {
        reply.extend_from_slice(&r);
    }
    Some(reply)
}

/// One resource record whose owner is the question's name (a compression
/// pointer to offset 12).
fn record(rtype: u16, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0xc0, 0x0c];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&CLASS_IN.to_be_bytes());
    r.extend_from_slice(&TTL.to_be_bytes());
    r.extend_from_slice(&(data.len() as u16).to_be_bytes());
    r.extend_from_slice(data);
    r
}

/// Reads an uncompressed name at `at` (queries carry no pointers); returns
/// it without the final dot and the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // 0xc0 and up are pointers, 0x40..0xc0 reserved: not in a query.
        if len > 63 || labels.len() >= 127 {
            return None;
        }
        let label = msg.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += len;
    }
    Some((labels.join("."), at))
}

/// A name in wire form (labels of at most 63 bytes; ours are short).
fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(&encode_name(name));
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn zone() -> Zone {
        let mut z = Zone::default();
        z.a.insert("a.example".into(), Ipv4Addr::new(127, 0, 0, 1));
        z.srv.insert(
            "_xmpp-server._tcp.a.example".into(),
            (5269, "a.example".into()),
        );
        z
    }

    #[test]
    fn answers_a_and_srv() {
        let z = zone();
        let r = answer(&query(7, "A.Example", TYPE_A), &z).unwrap();
        assert_eq!(&r[..2], &7u16.to_be_bytes());
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert!(r.ends_with(&[0, 4, 127, 0, 0, 1]), "{r:?}");

        let r = answer(&query(8, "_xmpp-server._tcp.a.example", TYPE_SRV), &z).unwrap();
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        let mut tail = vec![0, 0, 0, 0];
        tail.extend_from_slice(&5269u16.to_be_bytes());
        tail.extend_from_slice(&encode_name("a.example"));
        assert!(r.ends_with(&tail), "{r:?}");
    }

    #[test]
    fn unknown_names_and_types() {
        let z = zone();
        // A known name without records of the type: NOERROR, no answer.
        let r = answer(&query(1, "a.example", 28), &z).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (0, 0));
        let r = answer(&query(5, "127.0.0.9", TYPE_A), &z).unwrap();
        assert!(r.ends_with(&[0, 4, 127, 0, 0, 9]), "{r:?}");
        let r = answer(&query(2, "b.example", TYPE_A), &z).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (RCODE_NXDOMAIN, 0));
        // Garbage: no panic, a format error or nothing.
        assert!(answer(&[1, 2, 3], &z).is_none());
        let mut bad = query(3, "a.example", TYPE_A);
        bad.truncate(15);
        assert_eq!(answer(&bad, &z).unwrap()[3] & 0x0f, RCODE_FORMERR);
        let mut ptr = query(4, "a.example", TYPE_A);
        ptr[12] = 0xc0;
        assert_eq!(answer(&ptr, &z).unwrap()[3] & 0x0f, RCODE_FORMERR);
    }
}
