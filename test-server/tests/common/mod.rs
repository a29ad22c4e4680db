//! Shared checks for the Prosody and ejabberd integration tests, with a
//! tiny raw-socket XMPP client (plaintext only, string matching only).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xmpp_test_server::{Options, ServerKind, TestServer};

/// Upper bound for any single wait on the server in these tests.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

pub fn options(kind: ServerKind) -> Options {
    Options::new(kind)
}

/// A raw XMPP client connection.
pub struct Raw {
    sock: TcpStream,
    buf: String,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to c2s");
        sock.set_nodelay(true).unwrap();
        Raw {
            sock,
            buf: String::new(),
        }
    }

    pub fn send(&mut self, data: &str) {
        self.sock
            .write_all(data.as_bytes())
            .expect("write to server");
    }

    /// Reads until `done(buffer)` holds; returns and clears the buffer.
    pub fn expect(&mut self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut chunk = [0u8; 8192];
        while !done(&self.buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; got: {}",
                self.buf
            );
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.read(&mut chunk) {
                Ok(0) => panic!(
                    "server closed the stream waiting for {what}; got: {}",
                    self.buf
                ),
                Ok(n) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read error waiting for {what}: {e}"),
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Opens a stream to `domain` and returns everything up to and
    /// including the stream features.
    pub fn open_stream(&mut self, domain: &str) -> String {
        self.send(&stream_header(domain));
        self.expect("stream features", |b| {
            b.contains("</stream:features>") || b.contains("<stream:features/>")
        })
    }

    /// SASL PLAIN; returns whether the server said success.
    pub fn auth_plain(&mut self, jid: &str, password: &str) -> bool {
        let local = jid.split('@').next().unwrap();
        let creds = base64(format!("\0{local}\0{password}").as_bytes());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ));
        let reply = self.expect("SASL outcome", |b| {
            b.contains("<success") || b.contains("<failure")
        });
        reply.contains("<success")
    }

    /// Logs in with SASL PLAIN and binds a resource.
    pub fn login(addr: SocketAddr, domain: &str, jid: &str, password: &str) -> Raw {
        let mut c = Raw::connect(addr);
        c.open_stream(domain);
        assert!(c.auth_plain(jid, password), "login as {jid} failed");
        c.open_stream(domain);
        c.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        let reply = c.expect("bind result", |b| {
            b.contains("</iq>") || b.contains("/>") && b.contains("bind1")
        });
        assert!(reply.contains("result"), "bind failed: {reply}");
        c
    }

    /// Sends an IQ (whose id must be `id`) and returns the reply text.
    pub fn iq(&mut self, id: &str, iq: &str) -> String {
        self.send(iq);
        let quoted = [format!("id='{id}'"), format!("id=\"{id}\"")];
        self.expect(&format!("reply to iq {id}"), |b| {
            quoted.iter().any(|q| {
                b.find(q.as_str())
                    .is_some_and(|at| b[at..].contains("</iq>") || b[at..].contains("/>"))
            })
        })
    }
}

pub fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    )
}

pub fn base64(data: &[u8]) -> String {
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

/// Whether process `pid` exists (and is not a zombie waiting for a
/// reaper, as orphans may be in containers).
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) == 0 };
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
}

pub fn check_stream_features(kind: ServerKind) {
    let t = Instant::now();
    let server = TestServer::start(options(kind)).unwrap();
    eprintln!("{kind}: started in {:?}", t.elapsed());
    assert_eq!(server.kind(), kind);
    assert_eq!(server.domain(), "localhost");
    assert_eq!(server.muc_domain(), "conference.localhost");
    assert!(server.c2s_addr().ip().is_loopback());
    assert!(server.ca_file().is_none());
    let mut c = Raw::connect(server.c2s_addr());
    let features = c.open_stream(server.domain());
    assert!(features.contains("stream:features"), "{features}");
    assert!(
        features.contains("PLAIN"),
        "PLAIN must be offered without TLS: {features}"
    );
    assert!(
        !features.contains("starttls"),
        "no TLS configured: {features}"
    );
}

pub fn check_accounts(kind: ServerKind) {
    let server = TestServer::start(options(kind)).unwrap();
    let t = Instant::now();
    let alice = server.account("alice").unwrap();
    let bob = server.account("Bob").unwrap();
    eprintln!("{kind}: two accounts in {:?}", t.elapsed());
    assert_eq!(alice.0, "alice@localhost");
    assert_eq!(bob.0, "bob@localhost");
    assert_ne!(alice.1, bob.1);
    let err = server.account("alice").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(
        server.account("no spaces").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );

    let addr = server.c2s_addr();
    let mut c = Raw::connect(addr);
    c.open_stream(server.domain());
    assert!(
        !c.auth_plain(&alice.0, "wrong password"),
        "wrong password accepted"
    );
    Raw::login(addr, server.domain(), &alice.0, &alice.1);
    Raw::login(addr, server.domain(), &bob.0, &bob.1);

    let t = Instant::now();
    for i in 0..50 {
        server.account(&format!("user{i}")).unwrap();
    }
    eprintln!("{kind}: 50 accounts in {:?}", t.elapsed());
}

pub fn check_restart(kind: ServerKind) {
    let mut server = TestServer::start(options(kind)).unwrap();
    let (jid, password) = server.account("carol").unwrap();
    let addr = server.c2s_addr();
    let old_pid = server.pid();
    let t = Instant::now();
    server.restart().unwrap();
    eprintln!("{kind}: restarted in {:?}", t.elapsed());
    assert_eq!(server.c2s_addr(), addr, "restart must keep the port");
    assert_ne!(server.pid(), old_pid);
    assert!(!alive(old_pid), "old process still running");
    let mut c = Raw::connect(addr);
    assert!(c.open_stream(server.domain()).contains("stream:features"));
    // The account survived, and new ones can be created.
    Raw::login(addr, server.domain(), &jid, &password);
    let (jid2, password2) = server.account("dave").unwrap();
    Raw::login(addr, server.domain(), &jid2, &password2);
}

pub fn check_side_by_side(kind: ServerKind) {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| TestServer::start(options(kind)).unwrap());
        let b = s.spawn(|| TestServer::start(options(kind)).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.c2s_addr(), b.c2s_addr());
    assert_ne!(a.pid(), b.pid());
    assert_ne!(a.dir(), b.dir());
    let (ja, pa) = a.account("erin").unwrap();
    // Accounts are per server.
    let mut c = Raw::connect(b.c2s_addr());
    c.open_stream(b.domain());
    assert!(
        !c.auth_plain(&ja, &pa),
        "account leaked to the other server"
    );
    Raw::login(a.c2s_addr(), a.domain(), &ja, &pa);
}

pub fn check_stop(kind: ServerKind) {
    let mut server = TestServer::start(options(kind)).unwrap();
    let pid = server.pid();
    let addr = server.c2s_addr();
    let dir = server.dir().to_path_buf();
    assert!(alive(pid));
    let t = Instant::now();
    server.stop();
    eprintln!("{kind}: stopped in {:?}", t.elapsed());
    assert!(!alive(pid), "server process {pid} survived stop()");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    server.stop(); // idempotent
    assert!(!server.log_tail(20).is_empty());
    drop(server);
    assert!(!dir.exists(), "temporary directory not removed");
}

/// The environment variable that makes [`owner_death_helper`] run.
const HELPER_ENV: &str = "XMPP_TEST_SERVER_OWNER_DEATH_HELPER";

/// Run (as an ignored test) in a child test process by
/// [`check_owner_death`]: starts a server, reports its pid and exits
/// without running destructors, like a crashed or killed test would.
pub fn owner_death_helper(kind: ServerKind) {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let server = TestServer::start(options(kind)).unwrap();
    println!("xts-helper-pid {}", server.pid());
    println!("xts-helper-dir {}", server.dir().display());
    io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// A server whose owner process dies without dropping it shuts down by
/// itself (it watches its stdin pipe).
pub fn check_owner_death(kind: ServerKind, helper_test: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            helper_test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.split("xts-helper-pid ").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "helper printed no pid: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    while alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "orphaned server {pid} still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{kind}: orphaned server exited {:?} after its owner",
        t.elapsed()
    );
    // Nobody else will remove the orphan's directory.
    let dir = stdout
        .lines()
        .find_map(|l| l.split("xts-helper-dir ").nth(1));
    std::fs::remove_dir_all(dir.expect("helper printed no dir").trim()).unwrap();
}

pub fn check_tls(kind: ServerKind) {
    let mut opts = options(kind);
    opts.tls = true;
    let t = Instant::now();
    let server = TestServer::start(opts).unwrap();
    eprintln!("{kind}: started with TLS in {:?}", t.elapsed());
    let ca = server.ca_file().expect("CA file with tls").to_path_buf();
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let mut c = Raw::connect(server.c2s_addr());
    let features = c.open_stream(server.domain());
    assert!(features.contains("starttls"), "{features}");
    assert!(
        features.contains("required"),
        "STARTTLS should be required: {features}"
    );
    // A real handshake, verifying the chain and the host name.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-starttls",
            "xmpp",
            "-xmpphost",
            "localhost",
        ])
        .args([
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            "-CAfile",
        ])
        .arg(&ca)
        .arg("-connect")
        .arg(server.c2s_addr().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("Verification: OK"),
        "{stderr}"
    );
}

/// Seconds until a ping is answered after pushing `bytes` of whitespace.
fn ping_after_bulk(server: &TestServer, bytes: usize) -> Duration {
    let (jid, password) = server.account("bulk").unwrap();
    let mut c = Raw::login(server.c2s_addr(), server.domain(), &jid, &password);
    let t = Instant::now();
    c.send(&" ".repeat(bytes));
    let reply = c.iq(
        "ping1",
        "<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert!(reply.contains("result"), "{reply}");
    t.elapsed()
}

pub fn check_rate_limit(kind: ServerKind) {
    // Unlimited by default: 256 KiB go through at once.
    let server = TestServer::start(options(kind)).unwrap();
    let fast = ping_after_bulk(&server, 256 * 1024);
    eprintln!("{kind}: 256 KiB unlimited took {fast:?}");
    assert!(
        fast < Duration::from_secs(2),
        "default config seems rate limited: {fast:?}"
    );
    drop(server);

    // 2000 B/s: 6000 bytes take about three seconds.
    let mut opts = options(kind);
    opts.c2s_rate_limit = Some("2000".into());
    let server = TestServer::start(opts).unwrap();
    let slow = ping_after_bulk(&server, 6000);
    eprintln!("{kind}: 6000 bytes at 2000 B/s took {slow:?}");
    assert!(
        slow >= Duration::from_millis(1500),
        "rate limit not applied: {slow:?}"
    );

    let mut opts = options(kind);
    opts.c2s_rate_limit = Some("10 parsecs".into());
    assert_eq!(
        TestServer::start(opts).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

/// Joins a fresh room and returns its disco#info.
fn room_info(server: &TestServer) -> String {
    let (jid, password) = server.account("roomer").unwrap();
    let mut c = Raw::login(server.c2s_addr(), server.domain(), &jid, &password);
    let room = format!("room1@{}", server.muc_domain());
    c.send(&format!(
        "<presence to='{room}/nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    c.expect("MUC self-presence", |b| {
        b.contains("code='110'") || b.contains("code=\"110\"")
    });
    c.iq(
        "info1",
        &format!(
            "<iq type='get' id='info1' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ),
    )
}

pub fn check_muc_archive(kind: ServerKind) {
    let server = TestServer::start(options(kind)).unwrap();
    let info = room_info(&server);
    assert!(info.contains("http://jabber.org/protocol/muc"), "{info}");
    assert!(
        !info.contains("urn:xmpp:mam:2"),
        "archiving should be off: {info}"
    );
    drop(server);

    let mut opts = options(kind);
    opts.muc_archive = true;
    let server = TestServer::start(opts).unwrap();
    let info = room_info(&server);
    assert!(
        info.contains("urn:xmpp:mam:2"),
        "archiving should be on: {info}"
    );
}
