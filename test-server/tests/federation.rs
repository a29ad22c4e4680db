//! [`FederatedPair`]: Prosody and ejabberd on two domains, federated over
//! loopback with the pair's own DNS server.

use std::time::Duration;

use xmpp_test_server::raw::RawClient;
use xmpp_test_server::{FederatedPair, FederationOptions, ServerKind, TestServer};

/// Whether process `pid` still exists (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z') && !state.starts_with('X')
    })
}

/// An account and a logged-in connection of it with presence sent.
struct User {
    jid: String,
    password: String,
    conn: RawClient,
}

impl User {
    fn new(server: &TestServer, name: &str) -> User {
        let (jid, password) = server.account(name).unwrap();
        let conn = Self::connect(server, &jid, &password);
        User {
            jid,
            password,
            conn,
        }
    }

    fn connect(server: &TestServer, jid: &str, password: &str) -> RawClient {
        let mut c =
            RawClient::login(server.c2s_addr(), server.domain(), jid, password, Some("t")).unwrap();
        c.set_timeout(Duration::from_secs(30));
        c.send("<presence/>").unwrap();
        c
    }

    /// Logs in again (after a restart of either server).
    fn reconnect(&mut self, server: &TestServer) {
        self.conn = Self::connect(server, &self.jid, &self.password);
    }
}

/// `from` sends a chat message with `body` to `to`'s full JID, which
/// receives it from `from`'s full JID.
fn exchange(from: &mut User, to: &mut User, body: &str) {
    let to_jid = to.conn.jid().unwrap().to_owned();
    let from_jid = from.conn.jid().unwrap().to_owned();
    from.conn
        .send(&format!(
            "<message type='chat' to='{to_jid}'><body>{body}</body></message>"
        ))
        .unwrap();
    let got = to
        .conn
        .read_until(body, |b| b.contains(&format!("<body>{body}</body>")))
        .unwrap();
    assert!(got.contains(&from_jid), "{got}");
}

/// [`exchange`], timed from the send to the arrival.
fn timed(from: &mut User, to: &mut User, body: &str) -> Duration {
    let start = std::time::Instant::now();
    exchange(from, to, body);
    start.elapsed()
}

fn median(d: &[Duration]) -> Duration {
    let mut d = d.to_vec();
    d.sort();
    d[d.len() / 2]
}

fn check_pair(room_host: ServerKind) {
    let mut pair = FederatedPair::start(FederationOptions {
        room_host,
        ..FederationOptions::default()
    })
    .unwrap();
    let (a, b) = (pair.server(0), pair.server(1));
    assert_eq!(a.kind(), room_host);
    assert_ne!(b.kind(), room_host);
    assert_eq!((a.domain(), b.domain()), ("a.example", "b.example"));
    assert_eq!(a.muc_domain(), "conference.a.example");
    assert_eq!(b.muc_domain(), "conference.b.example");
    assert_ne!(a.c2s_addr(), b.c2s_addr());
    assert!(a.s2s_addr().unwrap().ip().is_loopback());
    assert!(pair.nameserver().is_loopback());

    let mut alice = User::new(a, "alice");
    let mut bob = User::new(b, "bob");
    assert!(alice.jid.ends_with("@a.example") && bob.jid.ends_with("@b.example"));
    exchange(&mut alice, &mut bob, "hello-b");
    exchange(&mut bob, &mut alice, "hello-a");

    // One-way delivery time over an established s2s connection.
    let warm: Vec<Duration> = (0..10)
        .map(|n| timed(&mut alice, &mut bob, &format!("warm-{n}")))
        .collect();

    // Either server restarts (same ports, same data): federation works
    // again, with fresh logins (the old sessions are gone). Server 1 is
    // restarted without waiting for s2s: the first message to it opens a
    // new s2s connection (DNS, TCP, streams, dialback with its check
    // back to the sender's server) and waits for it.
    let mut pids = [pair.server(0).pid(), pair.server(1).pid()];
    pair.server_mut(1).restart().unwrap();
    bob.reconnect(pair.server(1));
    let cold = timed(&mut alice, &mut bob, "cold");
    let warm_again = timed(&mut alice, &mut bob, "warm-again");
    exchange(&mut bob, &mut alice, "again-a-1");
    eprintln!(
        "{room_host} to the other server: one message over an established s2s connection \
         p50 {:?} (max {:?}, 10 messages); the first one after the peer restarted {cold:?} \
         (the next {warm_again:?})",
        median(&warm),
        warm.iter().max().unwrap(),
    );
    assert_ne!(pair.server(1).pid(), pids[1]);
    assert!(!alive(pids[1]), "the stopped server {} runs", pids[1]);
    pids[1] = pair.server(1).pid();
    // Server 0, through the pair: it waits until s2s works both ways.
    pair.restart(0).unwrap();
    assert_ne!(pair.server(0).pid(), pids[0]);
    assert!(!alive(pids[0]), "the stopped server {} runs", pids[0]);
    pids[0] = pair.server(0).pid();
    alice.reconnect(pair.server(0));
    bob.reconnect(pair.server(1));
    exchange(&mut alice, &mut bob, "again-b-0");
    exchange(&mut bob, &mut alice, "again-a-0");
    assert!(pids.iter().all(|&p| alive(p)));
    drop(pair);
    for pid in pids {
        assert!(!alive(pid), "server {pid} outlived its pair");
    }
}

#[test]
fn prosody_hosts_rooms() {
    check_pair(ServerKind::Prosody);
}

#[test]
fn ejabberd_hosts_rooms() {
    check_pair(ServerKind::Ejabberd);
}
