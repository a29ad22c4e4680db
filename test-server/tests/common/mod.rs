//! The integration tests, written once and run per server: `prosody.rs`
//! and `ejabberd.rs` each expand [`server_tests!`] for their server. The
//! raw-socket client is the crate's own ([`xmpp_test_server::raw`]).

use std::io::{self, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xmpp_test_server::raw::RawClient;
use xmpp_test_server::{Options, ServerKind, TestServer};

/// Every test, for the server `$kind` (a `ServerKind` variant).
macro_rules! server_tests {
    ($kind:ident) => {
        use xmpp_test_server::ServerKind::$kind;

        common::server_tests!(@each $kind:
            stream_features = check_stream_features,
            accounts = check_accounts,
            restart_keeps_port_and_accounts = check_restart,
            side_by_side = check_side_by_side,
            stop_kills_the_process = check_stop,
            tls = check_tls,
            rate_limit = check_rate_limit,
            muc_archive = check_muc_archive,
        );

        #[test]
        fn orphan_shuts_down() {
            common::check_owner_death($kind, "owner_death_helper");
        }

        #[test]
        #[ignore = "helper run by orphan_shuts_down in a child process"]
        fn owner_death_helper() {
            common::owner_death_helper($kind);
        }
    };
    (@each $kind:ident: $($test:ident = $check:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                common::$check($kind);
            }
        )*
    };
}
pub(crate) use server_tests;

pub fn options(kind: ServerKind) -> Options {
    Options::new(kind)
}

/// Logs in with SASL PLAIN and binds a resource the server picks.
fn login(server: &TestServer, jid: &str, password: &str) -> RawClient {
    RawClient::login(server.c2s_addr(), server.domain(), jid, password, None)
        .unwrap_or_else(|e| panic!("login as {jid} failed: {e}"))
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
    let mut c = RawClient::connect(server.c2s_addr()).unwrap();
    let features = c.open_stream(server.domain()).unwrap();
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

    let mut c = RawClient::connect(server.c2s_addr()).unwrap();
    c.open_stream(server.domain()).unwrap();
    assert!(
        !c.auth_plain(&alice.0, "wrong password").unwrap(),
        "wrong password accepted"
    );
    login(&server, &alice.0, &alice.1);
    login(&server, &bob.0, &bob.1);

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
    let mut c = RawClient::connect(addr).unwrap();
    assert!(c
        .open_stream(server.domain())
        .unwrap()
        .contains("stream:features"));
    // The account survived, and new ones can be created.
    login(&server, &jid, &password);
    let (jid2, password2) = server.account("dave").unwrap();
    login(&server, &jid2, &password2);
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
    let mut c = RawClient::connect(b.c2s_addr()).unwrap();
    c.open_stream(b.domain()).unwrap();
    assert!(
        !c.auth_plain(&ja, &pa).unwrap(),
        "account leaked to the other server"
    );
    login(&a, &ja, &pa);
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
    let mut c = RawClient::connect(server.c2s_addr()).unwrap();
    let features = c.open_stream(server.domain()).unwrap();
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
    let mut c = login(server, &jid, &password);
    let t = Instant::now();
    c.send(&" ".repeat(bytes)).unwrap();
    let reply = c
        .iq(
            "ping1",
            "<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .unwrap();
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
    let mut c = login(server, &jid, &password);
    let room = format!("room1@{}", server.muc_domain());
    c.send(&format!(
        "<presence to='{room}/nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .unwrap();
    c.read_until("MUC self-presence", |b| {
        b.contains("code='110'") || b.contains("code=\"110\"")
    })
    .unwrap();
    c.iq(
        "info1",
        &format!(
            "<iq type='get' id='info1' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ),
    )
    .unwrap()
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
