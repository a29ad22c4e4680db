//! A loopback TCP forwarder that can go silent: the half-open connection
//! of a NAT box or a Wi-Fi roam, on demand.
//!
//! [`Proxy::start`] listens on a free `127.0.0.1` port and forwards every
//! connection to an upstream address, both ways. [`Proxy::stall`] stops
//! forwarding on every connection open at that moment, in both directions,
//! without closing either socket: neither side sees a FIN or a reset, the
//! bytes simply stop arriving (as when the path between them dies).
//! Connections made after the stall are forwarded normally, so a client
//! that notices and reconnects gets through again.
//!
//! ```no_run
//! use xmpp_test_server::proxy::Proxy;
//! use xmpp_test_server::{Options, TestServer};
//!
//! let server = TestServer::start(Options::prosody())?;
//! let proxy = Proxy::start(server.c2s_addr())?;
//! // … connect a client to proxy.addr(), then:
//! proxy.stall();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Dropping the proxy closes every connection it holds.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// A running forwarder. See the [module docs](self).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct State {
    /// Connections accepted so far; each knows its number.
    accepted: u64,
    /// Connections numbered below this are stalled.
    stalled_below: u64,
    /// Both sockets of every connection, to close them on drop.
    sockets: Vec<TcpStream>,
    /// New connections are closed at once (the path is down for them).
    refusing: bool,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes stalled forwarders when the proxy closes.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to
    /// `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let acceptor = shared.clone();
        thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept(listener, upstream, acceptor))?;
        Ok(Proxy { addr, shared })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding on every connection open now, in both directions,
    /// closing nothing. Later connections are forwarded.
    pub fn stall(&self) {
        let mut st = self.shared.lock();
        st.stalled_below = st.accepted;
    }

    /// While `refusing`, new connections are closed as soon as they are
    /// accepted (the client sees the server hang up), so that a client
    /// that noticed a stall cannot get through until the test says so.
    pub fn refuse_new(&self, refusing: bool) {
        self.shared.lock().refusing = refusing;
    }

    /// How many connections the proxy has accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.lock().accepted
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let sockets = {
            let mut st = self.shared.lock();
            st.closed = true;
            std::mem::take(&mut st.sockets)
        };
        self.shared.changed.notify_all();
        for s in sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wakes the acceptor, which then sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.lock().closed {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.lock().refusing {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(upstream) else {
            // Upstream down: the client sees its connection closed, as it
            // would without the proxy.
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let number = {
            let mut st = shared.lock();
            let n = st.accepted;
            st.accepted += 1;
            for s in [&client, &server] {
                if let Ok(c) = s.try_clone() {
                    st.sockets.push(c);
                }
            }
            n
        };
        for (from, to) in [(&client, &server), (&server, &client)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let shared = shared.clone();
            let _ = thread::Builder::new()
                .name("proxy-pump".into())
                .spawn(move || pump(from, to, number, shared));
        }
    }
}

/// Forwards `from` to `to` until either closes, or holds still (reading
/// nothing more, closing nothing) once connection `number` is stalled.
fn pump(mut from: TcpStream, mut to: TcpStream, number: u64, shared: Arc<Shared>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buf);
        {
            let mut st = shared.lock();
            if number < st.stalled_below {
                // Stalled: hold these bytes, and a close too (a dead path
                // carries no FIN either), until the proxy is dropped.
                while !st.closed {
                    st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                return;
            }
        }
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    // One side closed: pass the close on, as a forwarder does.
    let _ = to.shutdown(Shutdown::Write);
}
