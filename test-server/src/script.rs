//! A scripted fake XMPP server on a loopback socket, for the answers a
//! real server gives only now and then (a refused resumption at an exact
//! moment) or never (a hostile server's 10 MB stanza).
//!
//! [`ScriptServer::start`] listens on a free `127.0.0.1` port and runs the
//! script, a closure, on its own thread for each connection, with a
//! [`ScriptConn`]: read until a pattern arrives, write any bytes. The
//! usual opening (stream header, SASL PLAIN, stream restart, features)
//! is [`ScriptConn::log_in`], resource binding [`ScriptConn::bind`].
//! Matching is on text, like [`raw`](crate::raw): enough for a script
//! that knows what the client sends.
//!
//! ```no_run
//! use xmpp_test_server::script::ScriptServer;
//!
//! let server = ScriptServer::start(|mut conn, _n| {
//!     if conn.log_in(false).is_none() {
//!         return;
//!     }
//!     let Some(iq) = conn.until(&["</iq>"]) else { return };
//!     conn.bind(&iq.1, "alice@localhost/r1");
//!     conn.say("<message from='x@localhost'><body>hi</body></message>");
//! })?;
//! println!("connect to {}", server.addr());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Dropping the server stops accepting; running scripts end when their
//! client hangs up.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// The stream header the script answers with (domain `localhost`).
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' id='s' from='localhost' version='1.0'>";

/// A running scripted server. See the [module docs](self).
#[derive(Debug)]
pub struct ScriptServer {
    addr: SocketAddr,
    closed: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl ScriptServer {
    /// Listens on a free loopback port; each connection runs
    /// `script(conn, n)` on a thread of its own, `n` counting connections
    /// from 0.
    pub fn start<F>(script: F) -> io::Result<ScriptServer>
    where
        F: Fn(ScriptConn, u64) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let closed = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let (c, a, s) = (closed.clone(), accepted.clone(), sockets.clone());
        thread::Builder::new()
            .name("script-accept".into())
            .spawn(move || {
                for sock in listener.incoming() {
                    if c.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(sock) = sock else { continue };
                    let _ = sock.set_nodelay(true);
                    if let Ok(copy) = sock.try_clone() {
                        s.lock().unwrap_or_else(|p| p.into_inner()).push(copy);
                    }
                    let n = a.fetch_add(1, Ordering::AcqRel);
                    let script = script.clone();
                    let _ = thread::Builder::new()
                        .name(format!("script-{n}"))
                        .spawn(move || {
                            script(
                                ScriptConn {
                                    sock,
                                    buf: String::new(),
                                },
                                n,
                            )
                        });
                }
            })?;
        Ok(ScriptServer {
            addr,
            closed,
            accepted,
            sockets,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        for s in self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wakes the acceptor, which then sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// The client's side of one connection, read as text.
#[derive(Debug)]
pub struct ScriptConn {
    sock: TcpStream,
    buf: String,
}

impl ScriptConn {
    /// Reads until one of `patterns` has arrived; returns which, and
    /// everything up to the end of it (dropped from what is kept). `None`
    /// when the client hung up.
    pub fn until(&mut self, patterns: &[&str]) -> Option<(usize, String)> {
        loop {
            let found = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| self.buf.find(p).map(|at| (at + p.len(), i)))
                .min();
            if let Some((end, i)) = found {
                let head: String = self.buf.drain(..end).collect();
                return Some((i, head));
            }
            let mut chunk = [0u8; 4096];
            let n = self.sock.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    /// Reads and discards until the client hangs up.
    pub fn drain(&mut self) {
        while self.until(&["\u{0}"]).is_some() {}
    }

    /// Writes `text`; `false` when the client hung up.
    pub fn say(&mut self, text: &str) -> bool {
        self.say_bytes(text.as_bytes())
    }

    /// Writes `bytes`; `false` when the client hung up.
    pub fn say_bytes(&mut self, bytes: &[u8]) -> bool {
        self.sock.write_all(bytes).is_ok()
    }

    /// Stream header, SASL PLAIN (any credentials), stream restart: up to
    /// the features that offer resource binding, and stream management
    /// (XEP-0198) if `sm`. `None` when the client hung up.
    pub fn log_in(&mut self, sm: bool) -> Option<()> {
        self.until(&["<stream:stream"])?;
        self.until(&[">"])?;
        self.say(HEADER);
        self.say(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        );
        self.until(&["</auth>"])?;
        self.say("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        self.until(&["<stream:stream"])?;
        self.until(&[">"])?;
        self.say(HEADER);
        let sm = if sm {
            "<sm xmlns='urn:xmpp:sm:3'/>"
        } else {
            ""
        };
        self.say(&format!(
            "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>{sm}</stream:features>"
        ))
        .then_some(())
    }

    /// Answers the resource binding request whose text ends `head` (as
    /// [`until`](Self::until) returned it) with `full_jid`.
    pub fn bind(&mut self, head: &str, full_jid: &str) -> bool {
        let iq = &head[head.rfind("<iq").unwrap_or(0)..];
        let id = id_of(iq).unwrap_or_default();
        self.say(&format!(
            "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>{full_jid}</jid></bind></iq>"
        ))
    }
}

impl Drop for ScriptConn {
    /// Hangs up (the server keeps a copy of the socket for its own drop,
    /// so dropping this one alone would not close the connection).
    fn drop(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// The `id` attribute in `element`'s text, either quote.
pub fn id_of(element: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let key = format!("id={quote}");
        if let Some(at) = element.find(&key) {
            let rest = &element[at + key.len()..];
            if let Some(end) = rest.find(quote) {
                return Some(rest[..end].to_owned());
            }
        }
    }
    None
}
