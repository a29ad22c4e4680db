//! A tiny blocking XMPP client on a plain TCP socket: plaintext only, SASL
//! PLAIN, and string matching instead of an XML parser.
//!
//! It can write any bytes, including stanzas that typed XMPP libraries
//! refuse to build (a hostile peer's client can send them, and servers
//! forward them), and it checks a server without pulling in an XMPP
//! stack: the crate's own readiness probe is one. For the servers of this
//! crate, which allow plaintext authentication unless
//! [`Options::tls`](crate::Options::tls) is set.
//!
//! ```no_run
//! use xmpp_test_server::raw::RawClient;
//! use xmpp_test_server::{Options, TestServer};
//!
//! let server = TestServer::start(Options::prosody())?;
//! let (jid, password) = server.account("eve")?;
//! let mut eve = RawClient::login(server.c2s_addr(), server.domain(), &jid, &password, None)?;
//! let reply = eve.iq("p1", "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")?;
//! assert!(reply.contains("result"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! All waits are bounded by the client's timeout ([`DEFAULT_TIMEOUT`]
//! unless set otherwise); running out of it is an
//! [`io::ErrorKind::TimedOut`] error that quotes what had arrived.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a [`RawClient`] waits for the server, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A raw XMPP client connection. See the [module docs](self).
#[derive(Debug)]
pub struct RawClient {
    sock: TcpStream,
    /// What arrived and was not yet returned by [`RawClient::read_until`].
    buf: Vec<u8>,
    timeout: Duration,
    jid: Option<String>,
}

impl RawClient {
    /// Connects to `addr` (no stream yet), waiting at most
    /// [`DEFAULT_TIMEOUT`] for this and each later read.
    pub fn connect(addr: SocketAddr) -> io::Result<RawClient> {
        Self::connect_timeout(addr, DEFAULT_TIMEOUT)
    }

    /// Connects to `addr`, waiting at most `timeout` for this and each
    /// later read.
    pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<RawClient> {
        let sock = TcpStream::connect_timeout(&addr, timeout)?;
        sock.set_nodelay(true)?;
        Ok(RawClient {
            sock,
            buf: Vec::new(),
            timeout,
            jid: None,
        })
    }

    /// Connects, opens a stream to `domain`, authenticates as `jid` with
    /// SASL PLAIN, and binds `resource` (or one the server picks).
    pub fn login(
        addr: SocketAddr,
        domain: &str,
        jid: &str,
        password: &str,
        resource: Option<&str>,
    ) -> io::Result<RawClient> {
        let mut c = RawClient::connect(addr)?;
        c.open_stream(domain)?;
        if !c.auth_plain(jid, password)? {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("login as {jid} failed"),
            ));
        }
        c.open_stream(domain)?;
        c.bind(resource)?;
        Ok(c)
    }

    /// How long later waits may take.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The full JID the server bound (after [`RawClient::bind`] or
    /// [`RawClient::login`]).
    pub fn jid(&self) -> Option<&str> {
        self.jid.as_deref()
    }

    /// Writes `data` as it is.
    pub fn send(&mut self, data: &str) -> io::Result<()> {
        self.sock.write_all(data.as_bytes())
    }

    /// Reads until `done(everything not yet returned)` holds, then returns
    /// that text and forgets it. `what` names the wait in errors.
    pub fn read_until(&mut self, what: &str, done: impl Fn(&str) -> bool) -> io::Result<String> {
        let deadline = Instant::now() + self.timeout;
        let mut chunk = [0u8; 8192];
        while !done(&String::from_utf8_lossy(&self.buf)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out waiting for {what}; got: {}", self.text()),
                ));
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "server closed the stream waiting for {what}; got: {}",
                            self.text()
                        ),
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("read error waiting for {what}: {e}"),
                    ))
                }
            }
        }
        let text = self.text();
        self.buf.clear();
        Ok(text)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Opens a stream to `domain` and returns everything up to and
    /// including the stream features.
    pub fn open_stream(&mut self, domain: &str) -> io::Result<String> {
        self.send(&stream_header(domain))?;
        self.read_until("stream features", has_complete_features)
    }

    /// SASL PLAIN; returns whether the server said success.
    pub fn auth_plain(&mut self, jid: &str, password: &str) -> io::Result<bool> {
        let local = jid.split('@').next().unwrap_or(jid);
        let creds = base64(format!("\0{local}\0{password}").as_bytes());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))?;
        let reply = self.read_until("SASL outcome", |b| {
            b.contains("<success") || b.contains("<failure")
        })?;
        Ok(reply.contains("<success"))
    }

    /// Binds `resource` (or one the server picks) on an authenticated
    /// stream and returns the bound full JID.
    pub fn bind(&mut self, resource: Option<&str>) -> io::Result<String> {
        let resource = resource
            .map(|r| format!("<resource>{r}</resource>"))
            .unwrap_or_default();
        let reply = self.iq(
            "bind1",
            &format!(
                "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                 {resource}</bind></iq>"
            ),
        )?;
        if !reply.contains("result") {
            return Err(io::Error::other(format!("bind failed: {reply}")));
        }
        let jid = reply
            .split_once("<jid>")
            .and_then(|(_, rest)| rest.split_once("</jid>"))
            .map(|(jid, _)| jid.to_owned())
            .ok_or_else(|| io::Error::other(format!("no JID in the bind result: {reply}")))?;
        self.jid = Some(jid.clone());
        Ok(jid)
    }

    /// Sends an IQ (whose id must be `id`) and returns the text up to the
    /// end of its reply.
    pub fn iq(&mut self, id: &str, iq: &str) -> io::Result<String> {
        self.send(iq)?;
        let quoted = [format!("id='{id}'"), format!("id=\"{id}\"")];
        self.read_until(&format!("reply to iq {id}"), |b| {
            quoted.iter().any(|q| {
                b.find(q.as_str())
                    .is_some_and(|at| b[at..].contains("</iq>") || b[at..].contains("/>"))
            })
        })
    }

    /// Closes the stream (best effort) and the connection.
    pub fn close(mut self) {
        let _ = self.send("</stream:stream>");
    }
}

/// The opening of a client stream to `domain`.
pub fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    )
}

/// Whether `text` holds a complete `<stream:features>` element.
pub fn has_complete_features(text: &str) -> bool {
    text.contains("</stream:features>") || text.contains("<stream:features/>")
}

/// Standard base64 with padding (for SASL PLAIN only: no dependency).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\0alice\0pw"), "AGFsaWNlAHB3");
    }

    #[test]
    fn features_complete() {
        assert!(has_complete_features("<stream:features/>"));
        assert!(has_complete_features(
            "<stream:features><mechanisms/></stream:features>"
        ));
        assert!(!has_complete_features("<stream:features><mechanisms/>"));
    }
}
