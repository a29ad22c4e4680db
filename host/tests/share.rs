//! Sharing an app into the chat and opening it (`webxdc_host::share`).
//!
//! Against a real Prosody with HTTP upload: alice's host uploads and shares
//! the board app, bob's host finds the share in the room (live and in the
//! archive), downloads it (the same files), and both serve the shared
//! thread: two headless Chromium pages exchange realtime payloads both
//! ways. Against a tiny local HTTP server: a file whose hash differs is
//! refused, an oversize download stops at the limit (also an endless one),
//! Content-Length and chunked bodies both load; plain http to a host that
//! is not loopback and an aesgcm URL are refused with their typed errors,
//! without any connection (HTTPS itself: `tests/share_tls.rs`). The
//! command itself:
//! `--share` on one account and `--open` on another meet in one instance;
//! without upload, `--share` says so and serves the default instance.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use browser::{serial, Chat, Page};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use webxdc_host::share::{self, ShareError, SharedApp};
use webxdc_host::{App, Limits};
use webxdc_realtime_xmpp::{ClientEvent, EngineEvent};
use xmpp_test_server::Options;

const WAIT: Duration = Duration::from_secs(20);

fn board_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("apps/board")
}

/// The board app packed with `pack_dir`, and its bytes.
fn packed_board() -> (App, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("board.xdc");
    let app = webxdc_host::loader::pack_dir(&board_dir(), &out).unwrap();
    (app, std::fs::read(&out).unwrap())
}

fn assert_same_files(a: &App, b: &App) {
    assert_eq!(a.name(), b.name());
    assert_eq!(a.paths(), b.paths());
    for path in a.paths() {
        assert_eq!(a.file(path), b.file(path), "{path}");
    }
}

fn shared(url: String, bytes: &[u8]) -> SharedApp {
    SharedApp {
        thread: "t-1".into(),
        url,
        name: Some("board.xdc".into()),
        size: Some(bytes.len() as u64),
        media_type: Some(share::MEDIA_TYPE.into()),
        sha256: Some(Sha256::digest(bytes).to_vec()),
    }
}

// ----- the tiny HTTP server --------------------------------------------------------

/// What the tiny server answers to every GET.
#[derive(Clone)]
enum Answer {
    /// 200 with a Content-Length.
    Sized(Vec<u8>),
    /// 200, chunked, in chunks of this many bytes.
    Chunked(Vec<u8>, usize),
    /// 200, chunked, 64 KiB chunks for ever (until the client goes).
    Endless,
    /// 200 announcing this Content-Length, then a few bytes, then the
    /// connection stays open.
    Announces(u64),
    /// This status, empty body.
    Status(u16),
}

/// A loopback HTTP/1.1 server answering every request with `answer`; the
/// counter is the body bytes it managed to write.
async fn tiny_server(answer: Answer) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (answer, counter) = (answer.clone(), counter.clone());
            tokio::spawn(async move {
                // The request head (these requests have no body).
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = respond(&mut s, answer, &counter).await;
            });
        }
    });
    (addr, written)
}

async fn respond(
    s: &mut tokio::net::TcpStream,
    answer: Answer,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    let chunked_head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    match answer {
        Answer::Sized(body) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            s.write_all(head.as_bytes()).await?;
            s.write_all(&body).await?;
            counter.fetch_add(body.len() as u64, Ordering::Relaxed);
        }
        Answer::Chunked(body, size) => {
            s.write_all(chunked_head.as_bytes()).await?;
            for chunk in body.chunks(size) {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                s.write_all(chunk).await?;
                s.write_all(b"\r\n").await?;
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            s.write_all(b"0\r\n\r\n").await?;
        }
        Answer::Endless => {
            s.write_all(chunked_head.as_bytes()).await?;
            let chunk = vec![b'x'; 64 * 1024];
            loop {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                s.write_all(&chunk).await?;
                s.write_all(b"\r\n").await?;
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        Answer::Announces(n) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\nPK");
            s.write_all(head.as_bytes()).await?;
            // Hold the connection: the client must not wait for the rest.
            let mut buf = [0u8; 16];
            while s.read(&mut buf).await? > 0 {}
        }
        Answer::Status(code) => {
            let head = format!("HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\n\r\n");
            s.write_all(head.as_bytes()).await?;
        }
    }
    s.flush().await
}

// ----- downloads against the tiny server -------------------------------------------

#[tokio::test]
async fn sized_and_chunked_downloads_load_the_same_app() {
    let (original, bytes) = packed_board();
    for answer in [
        Answer::Sized(bytes.clone()),
        Answer::Chunked(bytes.clone(), 1000),
        Answer::Chunked(bytes.clone(), 1),
    ] {
        let (addr, _) = tiny_server(answer).await;
        let app = share::open(
            &shared(format!("http://{addr}/f/board.xdc"), &bytes),
            Limits::default(),
        )
        .await
        .unwrap();
        assert_same_files(&app, &original);
    }
}

#[tokio::test]
async fn a_share_whose_hash_does_not_match_is_refused() {
    let (_, bytes) = packed_board();
    let (addr, _) = tiny_server(Answer::Sized(bytes.clone())).await;
    let url = format!("http://{addr}/f/board.xdc");
    let mut wrong = shared(url.clone(), &bytes);
    wrong.sha256 = Some(Sha256::digest(b"another file").to_vec());
    let err = share::open(&wrong, Limits::default()).await.unwrap_err();
    assert!(
        matches!(&err, ShareError::HashMismatch { url: u } if *u == url),
        "{err:?}"
    );
    // A hash of the wrong length matches nothing either.
    wrong.sha256 = Some(vec![0; 3]);
    let err = share::open(&wrong, Limits::default()).await.unwrap_err();
    assert!(matches!(err, ShareError::HashMismatch { .. }), "{err:?}");
    // The same file with its own hash loads: the hash made the difference.
    share::open(&shared(url.clone(), &bytes), Limits::default())
        .await
        .unwrap();
    // Without a hash, a size that differs is refused too.
    let mut sized = shared(url, &bytes);
    sized.sha256 = None;
    sized.size = Some(bytes.len() as u64 + 1);
    let err = share::open(&sized, Limits::default()).await.unwrap_err();
    assert!(matches!(err, ShareError::SizeMismatch { .. }), "{err:?}");
}

/// Limits whose largest `.xdc` is 512 KiB.
fn small_limits() -> Limits {
    Limits {
        max_total: 256 * 1024,
        ..Limits::default()
    }
}

#[tokio::test]
async fn an_oversize_download_stops_at_the_limit() {
    let limit = 512 * 1024;
    // An endless body: the download ends only because it stops reading.
    let (addr, written) = tiny_server(Answer::Endless).await;
    let mut app = shared(format!("http://{addr}/f/big.xdc"), b"");
    app.size = None;
    app.sha256 = None;
    let err = tokio::time::timeout(WAIT, share::open(&app, small_limits()))
        .await
        .expect("the download stops by itself")
        .unwrap_err();
    assert!(
        matches!(err, ShareError::TooLarge { limit: l, .. } if l == limit),
        "{err:?}"
    );
    // What the server could push is what the socket buffers take, far from
    // what an unbounded reader would have swallowed by now: bounded by the
    // limit plus the kernel's buffers.
    let sent = written.load(Ordering::Relaxed);
    assert!(sent < 64 << 20, "{sent} bytes were sent");

    // A Content-Length above the limit is refused at once, without waiting
    // for the body that never comes.
    let (addr, _) = tiny_server(Answer::Announces(10 << 30)).await;
    app.url = format!("http://{addr}/f/big.xdc");
    let err = tokio::time::timeout(WAIT, share::open(&app, small_limits()))
        .await
        .expect("refused at once")
        .unwrap_err();
    assert!(matches!(err, ShareError::TooLarge { .. }), "{err:?}");

    // A share that says it is too large is not fetched at all.
    let (addr, written) = tiny_server(Answer::Endless).await;
    app.url = format!("http://{addr}/f/big.xdc");
    app.size = Some(limit + 1);
    let err = share::open(&app, small_limits()).await.unwrap_err();
    assert!(matches!(err, ShareError::TooLarge { .. }), "{err:?}");
    assert_eq!(written.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn cleartext_encrypted_and_failed_downloads_get_typed_errors() {
    // Plain http to a host that is not loopback: refused before any
    // connection (and before any name lookup).
    let mut app = shared("http://upload.example.org/f/board.xdc".into(), b"x");
    let err = share::open(&app, Limits::default()).await.unwrap_err();
    assert!(
        matches!(&err, ShareError::Cleartext { host, .. } if host == "upload.example.org"),
        "{err:?}"
    );
    assert!(err.to_string().contains("refusing plain http://"), "{err}");
    app.url = "aesgcm://upload.example.org/f/board.xdc#0011".into();
    let err = share::open(&app, Limits::default()).await.unwrap_err();
    assert!(matches!(err, ShareError::Encrypted { .. }), "{err:?}");

    let (addr, _) = tiny_server(Answer::Status(404)).await;
    app.url = format!("http://{addr}/f/board.xdc");
    let err = share::open(&app, Limits::default()).await.unwrap_err();
    assert!(
        matches!(err, ShareError::Status { status: 404, .. }),
        "{err:?}"
    );

    // Bytes that are no zip: the loader's own error.
    let (addr, _) = tiny_server(Answer::Sized(b"not a zip".to_vec())).await;
    let app = shared(format!("http://{addr}/f/board.xdc"), b"not a zip");
    let err = share::open(&app, Limits::default()).await.unwrap_err();
    assert!(matches!(err, ShareError::Load(_)), "{err:?}");

    // Nobody listening: an HTTP error, not a hang.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = shared(format!("http://127.0.0.1:{port}/f/board.xdc"), b"x");
    let err = tokio::time::timeout(WAIT, share::open(&app, Limits::default()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ShareError::Http { .. }), "{err:?}");
}

// ----- alice shares, bob opens, both meet (Prosody with upload, Chromium) ----------

#[tokio::test]
async fn an_app_shared_by_one_host_is_opened_by_another_and_both_meet_in_it() {
    let _serial = serial().await;
    let chat = Chat::start_with(Options {
        http_upload: true,
        muc_archive: true,
        ..Options::prosody()
    })
    .await;
    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let (original, bytes) = packed_board();
    let mut bob_events = bob.client.events();

    let sent = tokio::time::timeout(
        WAIT,
        share::share(&alice.client, &alice.chat, &bytes, "board.xdc"),
    )
    .await
    .expect("shared in time")
    .expect("shared");
    let (_, http) = chat.server.http_upload().unwrap();
    assert!(
        sent.url.starts_with(&format!("http://{http}/")),
        "{}",
        sent.url
    );
    assert_eq!(sent.size, Some(bytes.len() as u64));
    assert_eq!(
        sent.sha256.as_deref(),
        Some(Sha256::digest(&bytes).as_slice())
    );
    assert_eq!(sent.media_type.as_deref(), Some("application/xdc+zip"));
    assert_eq!(sent.name.as_deref(), Some("board.xdc"));

    // Bob's host sees it live, and finds it in the room's archive.
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            match bob_events.recv().await {
                Some(ClientEvent::Room(EngineEvent::AppShared { frame, .. }))
                    if frame.app.thread == sent.thread =>
                {
                    return frame;
                }
                None | Some(ClientEvent::Closed) => panic!("bob's client closed"),
                _ => {}
            }
        }
    })
    .await
    .expect("bob sees the share");
    assert_eq!(seen.app, sent);
    assert_eq!(
        seen.from.resource().map(|r| r.as_str()),
        Some(alice.client.nick())
    );
    let listed = tokio::time::timeout(WAIT, bob.chat.shared_apps())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.last().map(|f| &f.app), Some(&sent), "{listed:?}");

    // The downloaded app is the shared one, file for file.
    let opened = share::open(&seen.app, Limits::default()).await.unwrap();
    assert_same_files(&opened, &original);

    // Both serve the shared thread; the boards meet over realtime.
    let instance = sent.thread.as_str();
    let (oa, ob) = (
        alice.serve(&Arc::new(original), instance).await,
        bob.serve(&Arc::new(opened), instance).await,
    );
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));
    for (p, q, name) in [
        (&pa, &pb, alice.client.nick()),
        (&pb, &pa, bob.client.nick()),
    ] {
        let deadline = Instant::now() + WAIT;
        while q
            .eval(
                "return board.peers().includes(arguments[0])",
                vec![json!(name)],
            )
            .await
            != json!(true)
        {
            p.eval("board.hello()", vec![]).await;
            assert!(Instant::now() < deadline, "the boards never met");
            // The interval between two hellos, not a synchronisation.
            q.pause(100).await;
        }
    }
    // A stroke each way, each seen by the other.
    pa.eval("board.stroke([[10, 10], [200, 200]])", vec![])
        .await;
    pb.wait_for("alice's stroke", "board.strokes() >= 1", WAIT)
        .await;
    pb.eval("board.stroke([[300, 10], [100, 250]])", vec![])
        .await;
    pa.wait_for("bob's stroke", "board.strokes() >= 2", WAIT)
        .await;
    pb.wait_for("both strokes", "board.strokes() === 2", WAIT)
        .await;
    oa.stop().await;
    ob.stop().await;
    alice.client.shutdown().await;
    bob.client.shutdown().await;
}

// ----- the command: --share and --open on a "real" server ---------------------------

/// A running `webxdc-host`, killed when dropped.
struct Command {
    child: std::process::Child,
    out: std::sync::mpsc::Receiver<String>,
    err: std::sync::mpsc::Receiver<String>,
    /// Every line read so far (stdout and stderr), for failure messages.
    seen: Vec<String>,
}

impl Command {
    fn start(args: &[&str]) -> Command {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_webxdc-host"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("webxdc-host starts");
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().unwrap()));
        let err = lines(Box::new(child.stderr.take().unwrap()));
        Command {
            child,
            out,
            err,
            seen: Vec::new(),
        }
    }

    /// The first stdout line with `prefix` (stderr is collected meanwhile).
    fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(l) = self.err.try_recv() {
                self.seen.push(l);
            }
            match self.out.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(l) => self.seen.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => panic!("webxdc-host ended before {prefix:?}: {:#?}", self.finish()),
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} from webxdc-host: {:#?}",
                self.seen
            );
        }
    }

    /// Waits until a line on either stream contains `text`.
    fn said(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.seen.iter().any(|l| l.contains(text)) {
            while let Ok(l) = self.out.try_recv() {
                self.seen.push(l);
            }
            if let Ok(l) = self.err.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(l);
            }
            assert!(
                Instant::now() < deadline,
                "webxdc-host never said {text:?}: {:#?}",
                self.seen
            );
        }
    }

    /// Waits for the command to end by itself; its exit status and every
    /// line.
    fn finish(&mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().expect("wait");
        for l in self.out.iter().chain(self.err.iter()) {
            self.seen.push(l);
        }
        (status.code(), self.seen.clone())
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `"name" is running as instance ID in room R.` → ID; `Open URL in a
/// browser.` → URL's address.
fn instance_of(line: &str) -> String {
    let rest = line.split(" is running as instance ").nth(1).expect(line);
    rest.split(' ').next().unwrap().to_owned()
}

fn addr_of(line: &str) -> SocketAddr {
    let url = line
        .strip_prefix("Open http://")
        .and_then(|r| r.strip_suffix("/ in a browser."))
        .expect(line);
    url.parse().expect(line)
}

fn real_args<'a>(jid: &'a str, password: &'a str, room: &'a str, c2s: &'a str) -> Vec<&'a str> {
    vec![
        "--jid",
        jid,
        "--password",
        password,
        "--room",
        room,
        "--server",
        c2s,
        "--plaintext",
    ]
}

#[tokio::test]
async fn the_command_shares_with_share_and_opens_with_open() {
    let server = tokio::task::spawn_blocking(|| {
        xmpp_test_server::TestServer::start(Options {
            http_upload: true,
            muc_archive: true,
            ..Options::prosody()
        })
    })
    .await
    .unwrap()
    .unwrap();
    let room = format!("cmd@{}", server.muc_domain());
    let c2s = server.c2s_addr().to_string();
    let (carol, carol_pw) = server.account("carol").unwrap();
    let (dave, dave_pw) = server.account("dave").unwrap();
    let board = board_dir();
    let board = board.to_str().unwrap();

    let mut args = vec![board];
    args.extend(real_args(&carol, &carol_pw, &room, &c2s));
    args.push("--share");
    let mut sharer = Command::start(&args);
    let shared = sharer.line("shared \"Shared board\" into the room");
    let instance = instance_of(&sharer.line("\"Shared board\" is running as instance"));
    assert!(shared.contains(&instance), "{shared}");
    assert!(uuid_like(&instance), "{instance}");
    sharer.line("Open http://");

    // Dave has no copy of the app: --open finds carol's share and serves it.
    let mut args = real_args(&dave, &dave_pw, &room, &c2s);
    args.push("--open");
    let mut opener = Command::start(&args);
    let running = opener.line("\"Shared board\" is running as instance");
    assert_eq!(instance_of(&running), instance);
    let addr = addr_of(&opener.line("Open http://"));
    let page = common::get(addr, "/").await;
    assert_eq!(page.status, 200);
    let original = App::load(&board_dir()).unwrap();
    assert_eq!(Some(page.body.as_slice()), original.file("index.html"));
    assert!(
        opener
            .seen
            .iter()
            .any(|l| l.contains("its SHA-256 matches")),
        "{:#?}",
        opener.seen
    );

    // --open with an instance nobody shared: a failure that says so.
    let mut args = real_args(&dave, &dave_pw, &room, &c2s);
    args.extend(["--open", "no-such-instance"]);
    drop(opener); // one login of dave at a time
    let (code, lines) = Command::start(&args).finish();
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("no app was shared") && l.contains("no-such-instance")),
        "{lines:#?}"
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test]
async fn without_upload_share_says_so_and_serves_the_instance() {
    let server = tokio::task::spawn_blocking(|| {
        xmpp_test_server::TestServer::start(Options {
            muc_archive: true,
            ..Options::prosody()
        })
    })
    .await
    .unwrap()
    .unwrap();
    let room = format!("cmd@{}", server.muc_domain());
    let c2s = server.c2s_addr().to_string();
    let (erin, pw) = server.account("erin").unwrap();
    let board = board_dir();
    let mut args = vec![board.to_str().unwrap()];
    args.extend(real_args(&erin, &pw, &room, &c2s));
    args.push("--share");
    let mut cmd = Command::start(&args);
    let running = cmd.line("\"Shared board\" is running as instance");
    assert_eq!(instance_of(&running), "webxdc-host-shared-board");
    cmd.said("offers no HTTP file upload (XEP-0363)");
    // --open without an app to fall back on: nothing to open, and why.
    drop(cmd);
    let mut args = real_args(&erin, &pw, &room, &c2s);
    args.push("--open");
    let (code, lines) = Command::start(&args).finish();
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("no app has been shared") && l.contains("offers no HTTP upload")),
        "{lines:#?}"
    );
}
