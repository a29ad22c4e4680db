//! Headless Chromium for tests and benchmarks, driven over WebDriver
//! (fantoccini and Debian's chromedriver, whose version matches the
//! browser's exactly).
//!
//! One chromedriver per process (started on a free loopback port on first
//! use, ended when the process exits), one browser session per [`Page`],
//! each with a profile of its own, ended when the page is dropped. Every
//! browser runs headless with no network but loopback. Chromium and
//! chromedriver are installed with `apt-get` when missing, as the test
//! servers are.
//!
//! Failures panic with a message that says what is missing: this crate is
//! for tests and benchmarks, where a panic is the report.
#![deny(missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// Debian's chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags every browser gets: headless, no network but loopback, no
/// background traffic, no throttling of pages that are not in front.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--window-size=900,760",
];

/// The chromedriver of this test binary.
struct Driver {
    url: String,
    /// The lifeline: when this process exits the pipe closes and the shell
    /// around chromedriver kills it (a `static` is never dropped).
    _stdin: ChildStdin,
    _child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Installs Chromium and chromedriver with `apt-get` when missing, as the
/// test servers are installed. [`Page::open`] does it by itself; a process
/// that will lose the network before its first page (a test in a
/// loopback-only network namespace) calls it first.
pub fn install() -> std::io::Result<()> {
    for (package, path) in [("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER)] {
        xmpp_test_server::ensure_package(package, None, || std::path::Path::new(path).exists())
            .map_err(|e| std::io::Error::new(e.kind(), format!("installing {package}: {e}")))?;
    }
    Ok(())
}

fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        if let Err(e) = install() {
            panic!("the browser tests need Debian's chromium and chromium-driver: {e}");
        }
        let port = free_port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(
                r#""$0" --port="$1" >/dev/null 2>&1 & pid=$!
                   cat >/dev/null
                   kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null"#,
            )
            .arg(CHROMEDRIVER)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .expect("start chromedriver");
        let stdin = child.stdin.take().expect("stdin");
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            url: format!("http://{addr}"),
            _stdin: stdin,
            _child: child,
        }
    })
}

/// Browser tests of one binary run one after another: two cores do not
/// run many Chromiums and XMPP servers at once in good time.
/// (An async lock: each test has its own runtime, and the lock is held
/// across awaits.)
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// One browser session (its own Chromium, its own profile) showing one
/// page. The session is ended when dropped, even after a failed test.
pub struct Page {
    /// The WebDriver session, for what the methods here do not cover.
    pub client: Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Page {
    /// Starts a browser with a fresh profile and loads `url`.
    pub async fn open(url: String) -> Page {
        let driver = driver();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let caps = caps.as_object().cloned().expect("an object");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a browser session");
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a session id");
        client.goto(&url).await.expect("the page loads");
        Page {
            client,
            session,
            _profile: profile,
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`).
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `expr` (a JS expression) until it is truthy, at most
    /// `timeout`; returns its value.
    pub async fn wait_for(&self, what: &str, expr: &str, timeout: Duration) -> Value {
        let script = format!("return ({expr});");
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(&script, vec![]).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let errors = self
                    .eval(
                        "return window.webxdc && window.webxdc.hostErrors || null",
                        vec![],
                    )
                    .await;
                panic!("timed out after {timeout:?} waiting for {what} ({expr}); host errors: {errors}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Loads `url` in this page.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    /// Lets `ms` milliseconds pass in the page: the interval between two
    /// copies of a send-until-received loop, never a synchronisation (the
    /// loop checks the page's state after it).
    pub async fn pause(&self, ms: u64) {
        let _ = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; setTimeout(done, arguments[0]);",
                vec![json!(ms)],
            )
            .await;
    }

    /// A PNG of the page as shown.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("a screenshot")
    }
}

impl Drop for Page {
    /// Ends the session with a plain blocking request: `Drop` cannot await,
    /// and a Chromium left running would outlive the test.
    fn drop(&mut self) {
        let url = &driver().url["http://".len()..];
        if let Ok(mut s) = TcpStream::connect(url) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {url}\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.write_all(req.as_bytes());
            // chromedriver keeps the connection open: read the head and
            // the body it announces, not to the end.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
        }
    }
}

/// The results of the project's conformance webxdc app
/// (`host/apps/conformance`), as its pages show them.
pub mod conformance {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::Page;

    /// Every case's result (`pass`, `fail`, `skip`) and detail, over all
    /// the pages of one run: a case failed if it failed on any page.
    #[derive(Debug, Default)]
    pub struct Results {
        /// Case name to (result, detail).
        pub cases: BTreeMap<String, (String, String)>,
        /// From the first wait to the last page's end.
        pub elapsed: Duration,
    }

    impl Results {
        /// Waits (at most `timeout` per page) until every page has run
        /// the app's cases, then reads them.
        pub async fn read(pages: &[&Page], timeout: Duration) -> Results {
            let started = Instant::now();
            let mut cases: BTreeMap<String, (String, String)> = BTreeMap::new();
            for page in pages {
                page.wait_for(
                    "the conformance run",
                    "window.conformance && window.conformance.done",
                    timeout,
                )
                .await;
                let r = page.eval("return window.conformance.results", vec![]).await;
                let r = r.as_object().cloned().unwrap_or_default();
                for (name, v) in r {
                    let result = v["result"].as_str().unwrap_or("?").to_owned();
                    let detail = v["detail"].as_str().unwrap_or("").to_owned();
                    let entry = cases
                        .entry(name)
                        .or_insert((result.clone(), detail.clone()));
                    if result == "fail" {
                        *entry = (result, detail);
                    }
                }
            }
            Results {
                cases,
                elapsed: started.elapsed(),
            }
        }

        /// How many cases ended with `result`.
        pub fn count(&self, result: &str) -> usize {
            self.cases.values().filter(|(r, _)| r == result).count()
        }

        /// The result of case `name`, if it ran.
        pub fn result(&self, name: &str) -> Option<&str> {
            self.cases.get(name).map(|(r, _)| r.as_str())
        }

        /// Prints the summary line and one line per case, with `note`'s
        /// words (if any) after a case's detail.
        pub fn print(&self, backend: &str, note: impl Fn(&str) -> &'static str) {
            println!("{}", self.line(backend));
            for (name, (result, detail)) in &self.cases {
                println!("  {result:5} {name} {detail}{}", note(name));
            }
        }

        /// Panics unless no case failed, at least `min` passed, and every
        /// case of `must` passed.
        pub fn assert_passed(&self, min: usize, must: &[&str]) {
            let cases = &self.cases;
            assert_eq!(self.count("fail"), 0, "failed cases: {cases:?}");
            assert!(self.count("pass") >= min, "too few cases ran: {cases:?}");
            for name in must {
                assert_eq!(self.result(name), Some("pass"), "{name}: {cases:?}");
            }
        }

        /// The suite's summary line for `backend`, as the Rust runner
        /// prints it: `conformance backend=… passed= failed= skipped=`.
        pub fn line(&self, backend: &str) -> String {
            format!(
                "conformance backend={backend} passed={} failed={} skipped={} ({} ms)",
                self.count("pass"),
                self.count("fail"),
                self.count("skip"),
                self.elapsed.as_millis()
            )
        }
    }
}
