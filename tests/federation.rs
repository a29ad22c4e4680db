//! The library across two federated servers (test-server's
//! [`FederatedPair`]: Prosody and ejabberd on `a.example` and `b.example`, s2s on
//! loopback): members of a room on one server and of the other server
//! exchange payloads; the `<no-store/>` hint survives the server-to-server
//! hop (MAM on both sides stores no payload, while ordinary messages are
//! stored); a remote member's other device gets its payloads and its
//! sending device does not; and a frame that a third server forges for a
//! room it does not host never reaches a member.
//!
//! Absence is shown by causality, as in `prosody.rs`: a later stanza on
//! the same path arrives, and the absent one would have come first.

mod common;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client, Config, MAX_PAYLOAD};
use xmpp_test_server::raw::RawClient as RawXmpp;
use xmpp_test_server::{FederatedPair, FederationOptions, ServerKind, TestServer};

/// An account: bare JID and password.
type Account = (String, String);

async fn start_pair(opts: FederationOptions) -> FederatedPair {
    init_tracing();
    tokio::task::spawn_blocking(move || FederatedPair::start(opts))
        .await
        .expect("start task")
        .expect("the federated pair starts")
}

/// A library client of `account` (device `resource`) on `server`.
async fn connect(server: &TestServer, (jid, password): &Account, resource: &str) -> Client {
    let config = Config::new(jid.parse().expect("account jid"), password.clone())
        .danger_plaintext_loopback_only(server.c2s_addr())
        .with_resource(resource)
        .with_connect_timeout(Duration::from_secs(10));
    Client::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{jid}/{resource} connects: {e}"))
}

/// Logs `account` in on `server` with test-server's blocking raw client
/// (resource `resource`, presence sent), off the runtime's threads.
async fn raw_login(server: &TestServer, (jid, password): &Account, resource: &str) -> RawXmpp {
    let (addr, domain) = (server.c2s_addr(), server.domain().to_owned());
    let (jid, password, resource) = (jid.clone(), password.clone(), resource.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut c = RawXmpp::login(addr, &domain, &jid, &password, Some(&resource))?;
        c.set_timeout(PATIENCE);
        c.send("<presence/>")?;
        Ok::<_, io::Error>(c)
    })
    .await
    .expect("raw login task")
    .expect("raw login")
}

/// Runs `f` on `c` off the runtime's threads and hands `c` back.
async fn raw<T: Send + 'static>(
    mut c: RawXmpp,
    f: impl FnOnce(&mut RawXmpp) -> io::Result<T> + Send + 'static,
) -> (RawXmpp, T) {
    tokio::task::spawn_blocking(move || {
        let out = f(&mut c).expect("raw client operation");
        (c, out)
    })
    .await
    .expect("raw client task")
}

/// The whole answer of a MAM query (XEP-0313) of `c` to the archive `to`
/// (`None`: the user's own archive): every result message and the final
/// IQ. A test archive is small, so one page holds it.
async fn query_archive(c: RawXmpp, to: Option<String>) -> (RawXmpp, String) {
    raw(c, move |c| {
        let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
        let reply = c.iq(
            "mam1",
            &format!(
                "<iq type='set' id='mam1'{to}><query xmlns='urn:xmpp:mam:2' queryid='q1'>\
                 <set xmlns='http://jabber.org/protocol/rsm'><max>500</max></set></query></iq>"
            ),
        )?;
        // The reply's end: the result IQ carries <fin/>.
        let reply = if reply.contains("</fin>") || reply.contains("</iq>") {
            reply
        } else {
            reply + &c.read_until("the end of the MAM result", |b| b.contains("</iq>"))?
        };
        assert!(
            reply.contains("type='result'") || reply.contains("type=\"result\""),
            "MAM query failed: {reply}"
        );
        Ok(reply)
    })
    .await
}

/// Payloads cross both ways between a member of the room's server and a
/// member of the other server with two devices; the remote member's other
/// device gets what it sent, the sending device does not; nothing of it
/// (nor of a 1:1 channel across the servers) lands in any archive, while
/// ordinary messages do.
async fn payloads_cross_and_nothing_is_archived(room_host: ServerKind) {
    let pair = start_pair(FederationOptions {
        room_host,
        muc_archive: true,
        user_archive: true,
    })
    .await;
    let (home, remote) = (pair.server(0), pair.server(1));
    let alice = home.account("alice").unwrap();
    let bob = remote.account("bob").unwrap();
    let room: BareJid = format!("realtime@{}", home.muc_domain()).parse().unwrap();

    let a = connect(home, &alice, "laptop").await;
    let desk = connect(remote, &bob, "desk").await;
    let phone = connect(remote, &bob, "phone").await;
    let mut ca = join(&a, &room, "app").await;
    let mut cd = join(&desk, &room, "app").await;
    let mut cp = join(&phone, &room, "app").await;
    barrier(&ca, &mut [&mut cd, &mut cp]).await;
    barrier(&cd, &mut [&mut ca, &mut cp]).await;

    let mut sent: Vec<String> = Vec::new();
    for i in 0..3 {
        let data = format!("home-to-remote-{i}");
        ca.send(data.as_bytes()).await.unwrap();
        assert_eq!(next_payload(&mut cd).await.data, data.as_bytes());
        assert_eq!(next_payload(&mut cp).await.data, data.as_bytes());
        sent.push(data);
    }
    // From the remote desk: Alice and Bob's phone get it. The desk does
    // not: its reflection came back through the room (over s2s) before
    // Alice's answer, which is the desk's next payload.
    cd.send(b"from-the-desk").await.unwrap();
    assert_eq!(next_payload(&mut ca).await.data, b"from-the-desk");
    let got = next_payload(&mut cp).await;
    assert_eq!(got.data, b"from-the-desk", "the other device");
    ca.send(b"answer").await.unwrap();
    let got = next_payload(&mut cd).await;
    assert_eq!(got.data, b"answer", "the desk got its own payload back");
    assert_eq!(next_payload(&mut cp).await.data, b"answer");
    sent.extend(["from-the-desk".into(), "answer".into()]);

    // The largest payload crosses s2s both ways (the stanza, about 171 KB,
    // fits both servers' s2s stanza limits: Prosody's
    // s2s_stanza_size_limit of 512 KiB, the 524288 of ejabberd's s2s
    // listener here).
    let max: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i * 7 % 251) as u8).collect();
    for home_sends in [true, false] {
        let name = if home_sends {
            "home to remote"
        } else {
            "remote to home"
        };
        let start = Instant::now();
        let got = if home_sends {
            ca.send(&max).await.unwrap();
            next_payload(&mut cd).await
        } else {
            cd.send(&max).await.unwrap();
            next_payload(&mut ca).await
        };
        assert!(got.data == max, "{name}: the largest payload");
        eprintln!(
            "{room_host} hosts the room: {MAX_PAYLOAD} B {name} in {:?}",
            start.elapsed()
        );
    }
    assert!(next_payload(&mut cp).await.data == max);
    assert!(next_payload(&mut cp).await.data == max);

    // A 1:1 channel between the two servers, no room in between.
    let alice_bare: BareJid = alice.0.parse().unwrap();
    let bob_bare: BareJid = bob.0.parse().unwrap();
    let mut da = a.direct(bob_bare).join_realtime_channel("direct").unwrap();
    let mut dd = desk
        .direct(alice_bare)
        .join_realtime_channel("direct")
        .unwrap();
    barrier(&da, &mut [&mut dd]).await;
    barrier(&dd, &mut [&mut da]).await;
    da.send(b"direct-a").await.unwrap();
    assert_eq!(next_payload(&mut dd).await.data, b"direct-a");
    dd.send(b"direct-b").await.unwrap();
    assert_eq!(next_payload(&mut da).await.data, b"direct-b");
    sent.extend(["direct-a".into(), "direct-b".into()]);

    // Ordinary messages, which the archives must hold (so that the checks
    // below can fail): a groupchat body in the room, a chat body from
    // Alice to Bob across the servers.
    let auditor_account = home.account("room-auditor").unwrap();
    let auditor = raw_login(home, &auditor_account, "audit").await;
    let room_s = room.to_string();
    let (auditor, _) = raw(auditor, move |c| {
        c.send(&format!(
            "<presence to='{room_s}/auditor'><x xmlns='http://jabber.org/protocol/muc'>\
             <history maxstanzas='0'/></x></presence>"
        ))?;
        // The self-presence (status 110) says we are in.
        c.read_until("the room's self-presence", |b| {
            b.contains("code='110'") || b.contains("code=\"110\"")
        })?;
        c.send(&format!(
            "<message to='{room_s}' type='groupchat'><body>ordinary-groupchat</body></message>"
        ))?;
        // Its reflection: the room has handled (and archived) it.
        c.read_until("the ordinary groupchat message", |b| {
            b.contains("<body>ordinary-groupchat</body>")
        })
    })
    .await;
    let alice_raw = raw_login(home, &alice, "audit").await;
    let bob_raw = raw_login(remote, &bob, "audit").await;
    // To the full JID: a bare one would reach the audit session only once
    // its presence is processed, which nothing here waits for.
    let bob_jid = bob_raw.jid().expect("bound").to_owned();
    let (alice_raw, ()) = raw(alice_raw, move |c| {
        c.send(&format!(
            "<message type='chat' to='{bob_jid}'><body>ordinary-chat</body></message>"
        ))
    })
    .await;
    // Bob's server archived it before delivering it.
    let (bob_raw, _) = raw(bob_raw, |c| {
        c.read_until("the ordinary chat message", |b| {
            b.contains("<body>ordinary-chat</body>")
        })
    })
    .await;

    // The room's archive.
    let (_auditor, room_archive) = query_archive(auditor, Some(room.to_string())).await;
    // Each member's own archive, on its own server.
    let (_alice_raw, alice_archive) = query_archive(alice_raw, None).await;
    let (_bob_raw, bob_archive) = query_archive(bob_raw, None).await;

    for (name, archive, control) in [
        ("the room's", &room_archive, "ordinary-groupchat"),
        ("Alice's", &alice_archive, "ordinary-chat"),
        ("Bob's", &bob_archive, "ordinary-chat"),
    ] {
        eprintln!(
            "{room_host} hosts the room: {name} archive: {} bytes, groupchat body archived: {}",
            archive.len(),
            archive.contains("ordinary-groupchat")
        );
        assert!(
            archive.contains(control),
            "{name} archive works (holds {control}): {archive}"
        );
        assert!(
            !archive.contains("urn:xmpp:webxdc:0"),
            "a realtime frame in {name} archive: {archive}"
        );
        for data in &sent {
            let b64 = base64(data.as_bytes());
            assert!(
                !archive.contains(&b64),
                "payload {data} in {name} archive: {archive}"
            );
        }
    }
    drop(pair);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_servers_room_on_prosody() {
    payloads_cross_and_nothing_is_archived(ServerKind::Prosody).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_servers_room_on_ejabberd() {
    payloads_cross_and_nothing_is_archived(ServerKind::Ejabberd).await;
}

/// Standard base64 with padding, as frames carry payloads (the crate the
/// library encodes with).
fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A hand-written s2s peer for the domain `c.example`: it authenticates to a
/// server with dialback and then writes whatever stanzas the test gives
/// it, as a hostile or broken server would. s2s streams carry stanzas one
/// way only: what the servers send back (dialback checks, answers) arrives
/// on connections they open to our listener, which the pair's DNS names;
/// a thread accepts them, says "valid" to every dialback key and check
/// (we are a fake), and collects everything they carry in `inbound`.
struct FakeServer {
    domain: String,
    inbound: Arc<(Mutex<String>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One plaintext s2s stream, read by string matching.
struct Stream {
    sock: TcpStream,
    buf: String,
}

impl Stream {
    fn new(sock: TcpStream) -> io::Result<Stream> {
        sock.set_nodelay(true)?;
        Ok(Stream {
            sock,
            buf: String::new(),
        })
    }

    fn send(&mut self, data: &str) -> io::Result<()> {
        use std::io::Write;
        self.sock.write_all(data.as_bytes())
    }

    /// Reads until `done(everything not yet consumed)`, then returns that
    /// text and forgets it. Bounded by [`PATIENCE`]; the end of the stream
    /// ends the wait too (the text then says so).
    fn read_until(&mut self, what: &str, done: impl Fn(&str) -> bool) -> io::Result<String> {
        use std::io::Read;
        let deadline = Instant::now() + PATIENCE;
        let mut chunk = [0u8; 8192];
        while !done(&self.buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out waiting for {what}; got: {}", self.buf),
                ));
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.read(&mut chunk) {
                Ok(0) => {
                    self.buf.push_str("[closed]");
                    break;
                }
                Ok(n) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                // A reset after a stream error is an end too.
                Err(e) => {
                    self.buf.push_str(&format!("[error: {e}]"));
                    break;
                }
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }
}

fn stream_header(from: &str, to: &str, id: Option<&str>) -> String {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
         from='{from}' to='{to}'{id} version='1.0'>"
    )
}

fn features_done(b: &str) -> bool {
    b.contains("</stream:features>") || b.contains("<stream:features/>")
}

impl FakeServer {
    /// Listens on a free port of 127.0.0.1, publishes it in the pair's DNS
    /// as `domain`, and serves the connections servers open to it.
    fn new(pair: &FederatedPair, domain: &str) -> io::Result<FakeServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        pair.add_peer(domain, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
        listener.set_nonblocking(true)?;
        let inbound = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (me, inbound2, stop2) = (domain.to_owned(), inbound.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let (me, inbound, stop) = (me.clone(), inbound2.clone(), stop2.clone());
                        std::thread::spawn(move || serve_inbound(sock, &me, &inbound, &stop));
                    }
                    // Nothing to accept: look at the stop flag again soon.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(FakeServer {
            domain: domain.to_owned(),
            inbound,
            stop,
        })
    }

    /// Opens an s2s stream to `server` and authenticates as our domain with
    /// dialback: sends a key (which the server checks on a connection to
    /// our listener) and waits for the server's verdict.
    fn connect(&self, server: &TestServer) -> io::Result<Stream> {
        let to = server.domain();
        let addr = server
            .s2s_addr()
            .ok_or_else(|| io::Error::other("no s2s"))?;
        let mut out = Stream::new(TcpStream::connect(addr)?)?;
        out.send(&stream_header(&self.domain, to, None))?;
        out.read_until("stream features", features_done)?;
        out.send(&format!(
            "<db:result from='{}' to='{to}'>not-a-secret-key</db:result>",
            self.domain
        ))?;
        let verdict = out.read_until("the dialback verdict", |b| b.contains("<db:result"))?;
        if !verdict.contains("type='valid'") && !verdict.contains("type=\"valid\"") {
            return Err(io::Error::other(format!("dialback refused: {verdict}")));
        }
        Ok(out)
    }
}

/// Waits (at most [`PATIENCE`]) until `found` finds something in what the
/// servers sent the fake, and returns that.
fn wait_inbound(
    inbound: &(Mutex<String>, Condvar),
    found: impl Fn(&str) -> Option<String>,
) -> io::Result<String> {
    let (text, cond) = inbound;
    let deadline = Instant::now() + PATIENCE;
    let mut text = text.lock().unwrap();
    loop {
        if let Some(hit) = found(&text) {
            return Ok(hit);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the servers did not send what the test waits for; got: {text}"),
            ));
        }
        text = cond.wait_timeout(text, left).unwrap().0;
    }
}

/// Serves one connection a server opened to the fake: answers its stream
/// header, says "valid" to its dialback key (`db:result`) and to its checks
/// of our key (`db:verify`), and appends everything to `inbound`.
fn serve_inbound(sock: TcpStream, me: &str, inbound: &(Mutex<String>, Condvar), stop: &AtomicBool) {
    use std::io::{Read, Write};
    let Ok(mut out) = sock.try_clone() else {
        return;
    };
    let mut sock = sock;
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let (mut buf, mut done, mut opened) = (String::new(), 0usize, false);
    let mut chunk = [0u8; 8192];
    while !stop.load(Ordering::Relaxed) {
        match sock.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
                buf.push_str(&text);
                let (all, cond) = inbound;
                all.lock().unwrap().push_str(&text);
                cond.notify_all();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        }
        if !opened {
            if let Some(at) = buf.find("<stream:stream") {
                if buf[at..].contains('>') {
                    let peer = attr(&buf[at..], "from").unwrap_or_default();
                    let reply = stream_header(me, &peer, Some("fake-stream"))
                        + "<stream:features><dialback xmlns='urn:xmpp:features:dialback'>\
                           <errors/></dialback></stream:features>";
                    let _ = out.write_all(reply.as_bytes());
                    opened = true;
                }
            }
        }
        // Answer each complete dialback element once.
        loop {
            let rest = &buf[done..];
            let next = [
                ("<db:result", "</db:result>"),
                ("<db:verify", "</db:verify>"),
            ]
            .into_iter()
            .filter_map(|(open, close)| {
                let at = rest.find(open)?;
                let end = rest[at..].find(close)? + at + close.len();
                Some((at, end, open))
            })
            .min_by_key(|&(at, ..)| at);
            let Some((at, end, open)) = next else { break };
            let el = &rest[at..end];
            let peer = attr(el, "from").unwrap_or_default();
            let reply = if open == "<db:result" {
                format!("<db:result from='{me}' to='{peer}' type='valid'/>")
            } else {
                let id = attr(el, "id").unwrap_or_default();
                format!("<db:verify from='{me}' to='{peer}' id='{id}' type='valid'/>")
            };
            let _ = out.write_all(reply.as_bytes());
            done += end;
        }
    }
}

/// The value of attribute `name` in the first tag of `xml`.
fn attr(xml: &str, name: &str) -> Option<String> {
    let tag_end = xml.find('>')?;
    let tag = &xml[..tag_end];
    for quote in ['\'', '"'] {
        let pat = format!(" {name}={quote}");
        if let Some(at) = tag.find(&pat) {
            let rest = &tag[at + pat.len()..];
            return rest.find(quote).map(|end| rest[..end].to_owned());
        }
    }
    None
}

/// A realtime frame as the library sends one, from `from` to `to`.
fn frame(id: &str, from: &str, to: &str, data: &[u8]) -> String {
    format!(
        "<message xmlns='jabber:server' from='{from}' to='{to}' type='groupchat' id='{id}'>\
         <thread>app</thread><no-store xmlns='urn:xmpp:hints'/>\
         <x xmlns='urn:xmpp:webxdc:0'><data>{}</data></x></message>",
        base64(data)
    )
}

/// A third server, `c.example`, forges realtime frames to a member of each
/// server: claiming to come from the room on `conference.a.example` (a
/// domain it does not serve: the member's server must refuse it), and
/// from a room of its own that the member never entered (the server
/// delivers it; the library must drop it). A real frame right after each
/// is delivered, and is the member's next payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_forged_by_another_server_are_not_delivered() {
    let pair = start_pair(FederationOptions::default()).await;
    let (home, remote) = (pair.server(0), pair.server(1));
    let room: BareJid = format!("realtime@{}", home.muc_domain()).parse().unwrap();
    let alice = home.account("alice").unwrap();
    let bob = remote.account("bob").unwrap();
    let a = connect(home, &alice, "laptop").await;
    let b = connect(remote, &bob, "desk").await;
    let mut ca = join(&a, &room, "app").await;
    let mut cb = join(&b, &room, "app").await;
    barrier(&ca, &mut [&mut cb]).await;
    barrier(&cb, &mut [&mut ca]).await;
    let fake = FakeServer::new(&pair, "c.example").unwrap();

    // Bob (on the other server) first, then Alice (on the room's server).
    for i in [1, 0] {
        let server = pair.server(i);
        let (target, other) = if i == 1 { (&b, &a) } else { (&a, &b) };
        let to = target.jid().to_string();
        let forged_from = format!("{room}/{}", other.nick());
        let (fake_domain, server_domain) = (fake.domain.clone(), server.domain().to_owned());
        let inbound = fake.inbound.clone();
        let stream = fake.connect(server).unwrap();
        let (mid, seen) = tokio::task::spawn_blocking(move || -> io::Result<(String, String)> {
            let mut s = stream;
            // Accepted by the server (c.example may speak for
            // realtime@c.example) and dropped by the library: the member
            // never entered that room. The answer to a ping after it
            // (which comes back on the server's own connection to c.example)
            // shows that the server went on with the stream.
            s.send(&frame(
                "own-room",
                &format!("realtime@{fake_domain}/mallory"),
                &to,
                b"forged-own-room",
            ))?;
            let mid = format!("mid-{i}");
            s.send(&format!(
                "<iq type='get' id='{mid}' from='{fake_domain}' to='{server_domain}'>\
                 <ping xmlns='urn:xmpp:ping'/></iq>"
            ))?;
            let answer = wait_inbound(&inbound, |t| {
                [format!("id='{mid}'"), format!("id=\"{mid}\"")]
                    .iter()
                    .find_map(|q| t.find(q.as_str()))
                    .map(|at| t[..at].rfind('<').map_or(&t[at..], |s| &t[s..]).to_owned())
            })?;
            // Forged: c.example speaking for the room on a.example. The server
            // must not route it; both close the stream with a stream error.
            s.send(&frame("forged-room", &forged_from, &to, b"forged-room"))?;
            let seen = s.read_until("the server's reaction", |b| {
                b.contains("</stream:stream>") || b.contains("[closed]") || b.contains("[error")
            })?;
            Ok((answer, seen))
        })
        .await
        .expect("fake server task")
        .unwrap();
        eprintln!(
            "{} ({}) on a frame forged for {room}: {seen}",
            server.domain(),
            server.kind()
        );
        assert!(
            mid.contains("type='result'") || mid.contains("type=\"result\""),
            "{} did not go on after a frame c.example may send: {mid}",
            server.kind()
        );
        assert!(
            seen.contains("<stream:error>"),
            "{} did not refuse the forged frame: {seen}",
            server.kind()
        );
        // A real frame from the other member, sent once the server dealt
        // with the forged ones: it is the next payload.
        let (sender, receiver) = if i == 1 {
            (&ca, &mut cb)
        } else {
            (&cb, &mut ca)
        };
        sender.send(b"real").await.unwrap();
        assert_eq!(
            next_payload(receiver).await.data,
            b"real",
            "a forged frame was delivered to {}",
            target.jid()
        );
    }
}
