//! Throwaway loopback XMPP servers (Prosody 0.12 and ejabberd 23.01 from
//! Debian) for tests, demos and benchmarks.
//!
//! [`TestServer::start`] writes a config into a fresh temporary directory,
//! starts the server as a foreground child process listening on a free port
//! of `127.0.0.1` only, and waits until it is ready to log users in. Several
//! servers can run side by side (parallel tests); nothing talks to the
//! internet (no s2s, no HTTP, no DNS for `localhost`, no ACME).
//!
//! ```no_run
//! use xmpp_test_server::{Options, TestServer};
//!
//! let server = TestServer::start(Options::prosody())?;
//! let (jid, password) = server.account("alice")?;
//! println!("log in as {jid} / {password} at {}", server.c2s_addr());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! If the server software is missing it is installed with `apt-get`
//! (serialised across threads and processes by a lock file), which needs
//! root. The servers themselves run as the current user (`root` is fine).
//!
//! Clean-up: [`TestServer`] stops the server and removes its directory when
//! dropped. Should the owning process die without running destructors (a
//! `static` server, `SIGKILL`, `process::exit`), the server notices that its
//! stdin pipe closed and shuts itself down; only the temporary directory is
//! then left behind.
//!
//! All methods block. [`TestServer::start`] and [`TestServer::restart`]
//! take about 0.2 s for Prosody and 1.5-2.5 s for ejabberd; in async
//! tests, call them from `spawn_blocking` or before entering the runtime.
//!
//! Set the environment variable `XMPP_TEST_SERVER_DEBUG=1` to make the
//! servers log at debug level (see [`TestServer::log_tail`]).

#![deny(missing_docs)]

mod ejabberd;
mod install;
mod net;
mod prosody;
mod tls;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// The XMPP domain served by every test server.
const DOMAIN: &str = "localhost";
/// The MUC service domain of every test server.
const MUC_DOMAIN: &str = "conference.localhost";
/// How long [`TestServer::start`] and [`TestServer::restart`] wait for the
/// server to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server gets between `SIGTERM` and `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Interval between readiness / exit polls.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Interval between polls for a stopping server's exit.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How many fresh ports [`TestServer::start`] tries when the chosen port
/// turns out to be taken by someone else between picking and binding it.
const PORT_ATTEMPTS: usize = 4;

/// Which XMPP server software to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Prosody (Debian package `prosody`, version 0.12).
    Prosody,
    /// ejabberd (Debian package `ejabberd`, version 23.01).
    Ejabberd,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::Prosody => "prosody",
            ServerKind::Ejabberd => "ejabberd",
        })
    }
}

/// How to configure a [`TestServer`].
///
/// Start from [`Options::prosody`] or [`Options::ejabberd`] and change the
/// fields as needed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which server software to run.
    pub kind: ServerKind,
    /// Enable MUC archiving (XEP-0313 on the MUC service), archiving every
    /// room by default, so a test can check that nothing gets stored.
    ///
    /// Prosody: `muc_mam` on the MUC component with `muc_log_by_default` and
    /// `muc_log_all_rooms`. ejabberd: `mod_mam` with `default: always` and
    /// the MUC default room option `mam: true`.
    pub muc_archive: bool,
    /// Client-to-server rate limit; `None` (the default and our recommended
    /// server configuration) means no limit.
    ///
    /// `Some("10kb/s")` reproduces Debian's stock Prosody configuration.
    /// Accepted forms: a plain number of bytes per second (`"3000"`) or a
    /// number with a unit and `/s` (`"500b/s"`, `"10kb/s"`, `"1mb/s"`).
    ///
    /// Prosody gets its `limits` module. Rates in `kb/s`, `mb/s` or `gb/s`
    /// are passed as written and so keep Prosody's decimal meaning
    /// (`"10kb/s"` = 10000 B/s); plain bytes (and `b/s`) are converted so
    /// that Prosody applies exactly that many bytes per second (rounded up
    /// to a multiple of 10; Prosody's own parser would read `"500b/s"` as
    /// 5000 B/s). Note that Prosody's default network backend has no burst
    /// allowance: it pauses reading for `bytes / rate` seconds after each
    /// read.
    ///
    /// ejabberd gets a c2s shaper of that many bytes per second, counting
    /// `k` as 1024 (`"10kb/s"` = 10240 B/s).
    pub c2s_rate_limit: Option<String>,
    /// Generate a throwaway CA and a certificate for `localhost` (see
    /// [`TestServer::ca_file`]) and require STARTTLS on c2s. When `false`
    /// the server offers no TLS and allows plaintext authentication
    /// (including SASL PLAIN).
    pub tls: bool,
}

impl Options {
    /// Defaults for `kind`: no MUC archive, no rate limit, no TLS.
    pub fn new(kind: ServerKind) -> Self {
        Options {
            kind,
            muc_archive: false,
            c2s_rate_limit: None,
            tls: false,
        }
    }

    /// Defaults for Prosody: no MUC archive, no rate limit, no TLS.
    pub fn prosody() -> Self {
        Self::new(ServerKind::Prosody)
    }

    /// Defaults for ejabberd: no MUC archive, no rate limit, no TLS.
    pub fn ejabberd() -> Self {
        Self::new(ServerKind::Ejabberd)
    }
}

/// Files of one server inside its temporary directory.
struct Layout {
    /// The temporary directory itself.
    root: PathBuf,
    /// The server's own log file.
    server_log: PathBuf,
    /// Everything the server process wrote to stdout/stderr (early start-up
    /// errors end up here, before the server's logging is configured).
    console_log: PathBuf,
}

/// The per-kind half of a [`TestServer`].
enum Backend {
    Prosody(prosody::Prosody),
    Ejabberd(ejabberd::Ejabberd),
}

/// A running throwaway XMPP server on `127.0.0.1`.
///
/// Stopped, and its temporary directory removed, when dropped.
pub struct TestServer {
    opts: Options,
    // Declared before `dir` so that nothing refers to the directory once it
    // is removed (fields drop in declaration order, after `Drop::drop`).
    backend: Backend,
    child: Option<Child>,
    /// Our end of the server's stdin. Closing it makes the server shut
    /// down (our watchdog for owners that die without running `Drop`). For
    /// ejabberd it is also the command channel (see `ejabberd.rs`).
    control: Mutex<Option<Control>>,
    pid: u32,
    /// Sizes of the server log and the console log when the current run
    /// started: start-up checks look only at what this run wrote.
    log_offsets: (u64, u64),
    port: net::PortLease,
    ca_file: Option<PathBuf>,
    layout: Layout,
    dir: tempfile::TempDir,
}

/// Our end of the server's stdin plus, for ejabberd, its reply channel.
pub(crate) struct Control {
    stdin: ChildStdin,
    replies: Option<std::sync::mpsc::Receiver<String>>,
}

impl TestServer {
    /// Starts a fresh server configured by `opts` and waits (at most 60 s)
    /// until it accepts client connections for `localhost`.
    ///
    /// Installs the server software with `apt-get` if it is missing (and
    /// `openssl` when `opts.tls` is set). The error message includes the
    /// tail of the server's log if it fails to start.
    pub fn start(opts: Options) -> io::Result<TestServer> {
        let rate = opts
            .c2s_rate_limit
            .as_deref()
            .map(RateLimit::parse)
            .transpose()?;
        match opts.kind {
            ServerKind::Prosody => prosody::ensure_installed()?,
            ServerKind::Ejabberd => ejabberd::ensure_installed()?,
        }
        let debug = std::env::var_os("XMPP_TEST_SERVER_DEBUG").is_some_and(|v| v != "0");
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start(&opts, rate.as_ref(), debug, net::PortLease::new()?) {
                // Someone grabbed the port between our pick and the server's
                // bind: retry from scratch with a fresh port (rare).
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
                result => return result,
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no free port found")))
    }

    /// One attempt of [`TestServer::start`] on `port`.
    fn try_start(
        opts: &Options,
        rate: Option<&RateLimit>,
        debug: bool,
        port: net::PortLease,
    ) -> io::Result<TestServer> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("xmpp-test-server-{}-", opts.kind))
            .tempdir()
            .map_err(|e| annotate(e, "cannot create the temporary directory"))?;
        let root = dir.path().to_path_buf();
        let certs = if opts.tls {
            Some(tls::generate(&root.join("tls"))?)
        } else {
            None
        };
        let config = ServerConfig {
            root: &root,
            muc_archive: opts.muc_archive,
            rate,
            certs: certs.as_ref(),
            debug,
        };
        let (backend, layout) = match opts.kind {
            ServerKind::Prosody => {
                let (p, layout) = prosody::Prosody::configure(&config, port.port())?;
                (Backend::Prosody(p), layout)
            }
            ServerKind::Ejabberd => {
                let (e, layout) = ejabberd::Ejabberd::configure(&config, port.port())?;
                (Backend::Ejabberd(e), layout)
            }
        };
        let mut server = TestServer {
            opts: opts.clone(),
            backend,
            child: None,
            control: Mutex::new(None),
            pid: 0,
            log_offsets: (0, 0),
            port,
            ca_file: certs.map(|c| c.ca),
            layout,
            dir,
        };
        server.launch()?;
        Ok(server)
    }

    /// The XMPP domain: `"localhost"`.
    pub fn domain(&self) -> &str {
        DOMAIN
    }

    /// The MUC service domain: `"conference.localhost"`.
    pub fn muc_domain(&self) -> &str {
        MUC_DOMAIN
    }

    /// Where the server accepts client connections: `127.0.0.1:PORT`. The
    /// port stays the same across [`TestServer::restart`].
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port.port()))
    }

    /// The PEM file of the throwaway CA that signed the server certificate
    /// (for `localhost` and `conference.localhost`), when [`Options::tls`]
    /// is set.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Which server software this is.
    pub fn kind(&self) -> ServerKind {
        self.opts.kind
    }

    /// The options this server was started with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The process id of the server (of the last run, once stopped).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temporary directory holding the server's config, data and logs
    /// (removed when the server is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates the account `name@localhost` with a random password and
    /// returns `(bare JID, password)`.
    ///
    /// `name` may contain ASCII letters (lowered), digits, `.`, `_` and `-`.
    /// Fails with [`io::ErrorKind::AlreadyExists`] if the account exists.
    /// Works while the server runs; accounts survive
    /// [`TestServer::restart`]. Takes well under a millisecond for Prosody
    /// (works even while it is stopped) and a few milliseconds for ejabberd
    /// (which must be running).
    pub fn account(&self, name: &str) -> io::Result<(String, String)> {
        let name = validate_username(name)?;
        let password = random_password()?;
        match &self.backend {
            Backend::Prosody(p) => p.create_account(&name, &password)?,
            Backend::Ejabberd(_) => {
                let mut control = self.lock_control();
                let control = control.as_mut().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotConnected, "ejabberd is not running")
                })?;
                ejabberd::create_account(control, &name, &password)?;
            }
        }
        Ok((format!("{name}@{DOMAIN}"), password))
    }

    /// Stops the server (see [`TestServer::stop`]) and starts it again on
    /// the same port with the same config and data; waits (at most 60 s)
    /// until it is ready again. Accounts and other stored data survive.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.launch()
    }

    /// Stops the server and waits for it to exit. Idempotent.
    ///
    /// Prosody gets `SIGTERM`; ejabberd is asked over its command channel
    /// (faster than its `SIGTERM` handling, which lingers for a second),
    /// falling back to `SIGTERM`. Whatever has not exited 15 s later gets
    /// `SIGKILL`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // ejabberd stops faster when asked over its command channel
            // than on SIGTERM; Prosody handles SIGTERM promptly.
            let asked = match self.backend {
                Backend::Ejabberd(_) => self
                    .lock_control()
                    .as_mut()
                    .is_some_and(ejabberd::request_stop),
                Backend::Prosody(_) => false,
            };
            terminate(&mut child, asked);
        }
        *self.lock_control() = None;
    }

    /// The last `lines` lines of the server's log, followed by the tail of
    /// whatever the process printed to stdout/stderr (if anything).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = tail_lines(&self.layout.server_log, lines);
        let console = tail_lines(&self.layout.console_log, lines);
        if !console.trim().is_empty() {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("--- stdout/stderr ---\n");
            out.push_str(&console);
        }
        out
    }

    /// Spawns the server process and waits until it is ready.
    fn launch(&mut self) -> io::Result<()> {
        debug_assert!(self.child.is_none());
        let mut cmd = match &self.backend {
            Backend::Prosody(p) => p.command(),
            Backend::Ejabberd(e) => e.command(),
        };
        let console = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.layout.console_log)
            .map_err(|e| {
                annotate(
                    e,
                    &format!("cannot open {}", self.layout.console_log.display()),
                )
            })?;
        let file_len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        self.log_offsets = (
            file_len(&self.layout.server_log),
            file_len(&self.layout.console_log),
        );
        let wants_stdout = matches!(self.backend, Backend::Ejabberd(_));
        cmd.stdin(Stdio::piped())
            .stdout(if wants_stdout {
                Stdio::piped()
            } else {
                Stdio::from(console.try_clone()?)
            })
            .stderr(Stdio::from(console.try_clone()?))
            // Our own process group: a Ctrl-C meant for the test runner
            // does not hit the server directly (it shuts down via the
            // stdin watchdog instead), and a SIGKILL can reach its helpers.
            .process_group(0)
            // Never let the server talk to a service manager or pick up
            // Erlang flags from the environment of the tests.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("ERL_FLAGS")
            .env_remove("ERL_AFLAGS")
            .env_remove("ERL_ZFLAGS");
        let program = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .spawn()
            .map_err(|e| annotate(e, &format!("cannot run {program}")))?;
        self.pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.child = Some(child);
        let replies = match stdout {
            Some(stdout) => Some(ejabberd::spawn_stdout_reader(stdout, console)?),
            None => None,
        };
        if let Some(stdin) = stdin {
            *self.lock_control() = Some(Control { stdin, replies });
        }
        let result = self.wait_ready();
        if result.is_err() {
            self.stop();
        }
        result
    }

    /// Polls (bounded by [`READY_TIMEOUT`]) until our process listens on the
    /// port and answers a stream header with stream features.
    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = self.c2s_addr();
        loop {
            let child = self
                .child
                .as_mut()
                .ok_or_else(|| io::Error::other("server process vanished"))?;
            if let Some(status) = child.try_wait()? {
                let kind = if self.log_says_addr_in_use() {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(self.start_error(kind, &format!("the server exited ({status})")));
            }
            match net::listener_owner(addr.port(), self.pid) {
                net::Owner::Us | net::Owner::Unknown => {
                    if net::probe_stream(addr, DOMAIN) {
                        return Ok(());
                    }
                }
                net::Owner::Other => {
                    return Err(self.start_error(
                        io::ErrorKind::AddrInUse,
                        "another process listens on the port",
                    ));
                }
                net::Owner::Nobody => {
                    // Prosody keeps running when it cannot bind; notice it
                    // from its log instead of waiting for the timeout.
                    if self.log_says_addr_in_use() {
                        return Err(self.start_error(
                            io::ErrorKind::AddrInUse,
                            "the server could not bind the port",
                        ));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(self.start_error(
                    io::ErrorKind::TimedOut,
                    &format!("not ready after {} s", READY_TIMEOUT.as_secs()),
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether this run's logs say that the port could not be bound.
    fn log_says_addr_in_use(&self) -> bool {
        let log = read_from(&self.layout.server_log, self.log_offsets.0)
            + &read_from(&self.layout.console_log, self.log_offsets.1);
        log.contains("Failed to open server port")
            || log.contains("eaddrinuse")
            || log.contains("address already in use")
    }

    fn start_error(&self, kind: io::ErrorKind, reason: &str) -> io::Error {
        io::Error::new(
            kind,
            format!(
                "{} failed to start on {} ({}): {reason}\n--- log tail ---\n{}",
                self.opts.kind,
                self.c2s_addr(),
                self.layout.root.display(),
                self.log_tail(40)
            ),
        )
    }

    fn lock_control(&self) -> MutexGuard<'_, Option<Control>> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        // The temporary directory is removed when `self.dir` drops.
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("kind", &self.opts.kind)
            .field("c2s_addr", &self.c2s_addr())
            .field("pid", &self.pid)
            .field("running", &self.child.is_some())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Everything the per-kind config writers need.
pub(crate) struct ServerConfig<'a> {
    root: &'a Path,
    muc_archive: bool,
    rate: Option<&'a RateLimit>,
    certs: Option<&'a tls::Certs>,
    debug: bool,
}

/// A parsed [`Options::c2s_rate_limit`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// The rate in Prosody's syntax (`"10kb/s"`).
    prosody: String,
    /// Bytes per second with binary units, for ejabberd's shaper.
    bytes_per_second: u64,
}

impl RateLimit {
    fn parse(s: &str) -> io::Result<RateLimit> {
        let invalid = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid c2s_rate_limit {s:?}: expected e.g. \"10kb/s\" or \"3000\""),
            )
        };
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = t[..digits].parse().map_err(|_| invalid())?;
        let rest = t[digits..].trim_start();
        // (binary multiplier for ejabberd, Prosody's decimal exponent)
        let (multiplier, unit_exponent): (u64, Option<u32>) = if rest.is_empty() {
            (1, None)
        } else {
            let unit = rest
                .strip_suffix("/s")
                .ok_or_else(invalid)?
                .to_ascii_lowercase();
            match unit.as_str() {
                "b" => (1, None),
                "kb" => (1 << 10, Some(3)),
                "mb" => (1 << 20, Some(6)),
                "gb" => (1 << 30, Some(9)),
                _ => return Err(invalid()),
            }
        };
        let bytes_per_second = n
            .checked_mul(multiplier)
            .filter(|&b| b > 0)
            .ok_or_else(invalid)?;
        let prosody = match unit_exponent {
            // Decimal units keep Prosody's own meaning (Debian's stock
            // "10kb/s" is 10000 B/s there).
            Some(_) => t.to_string(),
            // Prosody's parser multiplies the quantity by 10 for the unit
            // "b" (its exponent table has `b = 1`), so exact bytes per
            // second are written as tens of bytes.
            None => format!("{}b/s", bytes_per_second.div_ceil(10)),
        };
        Ok(RateLimit {
            prosody,
            bytes_per_second,
        })
    }
}

/// Stops and reaps `child`: if it was `already_asked` to stop, gives it
/// [`STOP_GRACE`] to exit; then sends `SIGTERM` and waits up to
/// [`STOP_GRACE`]; then `SIGKILL`s its process group.
fn terminate(child: &mut Child, already_asked: bool) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    if already_asked && wait_for_exit(child, STOP_GRACE) {
        return;
    }
    // SAFETY: plain syscall; `pid` is our unreaped child, so it cannot have
    // been recycled for another process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if wait_for_exit(child, STOP_GRACE) {
        return;
    }
    // SAFETY: as above; the child leads its own process group (see
    // `process_group(0)`), still unreaped, so `-pid` is that group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Polls until `child` has exited (and is reaped) or `timeout` passes.
fn wait_for_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(EXIT_POLL_INTERVAL),
        }
    }
}

/// Checks an account name and returns it lowered.
fn validate_username(name: &str) -> io::Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid account name {name:?}: use 1-64 of [A-Za-z0-9._-]"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// 24 hex digits from the kernel's CSPRNG (only ever ASCII, so it needs no
/// escaping in config files, Erlang terms or SASL).
fn random_password() -> io::Result<String> {
    let mut bytes = [0u8; 12];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| annotate(e, "cannot read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A process-unique number for temporary file names and request ids.
fn unique_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A file's text from byte `offset` on (at most its last MiB; empty if
/// missing).
fn read_from(path: &Path, offset: u64) -> String {
    const MAX_BYTES: u64 = 1 << 20;
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = offset.max(len.saturating_sub(MAX_BYTES));
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `lines` lines of a (possibly large or missing) text file.
fn tail_lines(path: &Path, lines: usize) -> String {
    let text = read_from(path, 0);
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Adds context to an IO error, keeping its kind.
pub(crate) fn annotate(e: io::Error, context: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

/// Writes `contents` to `path` with a readable error.
pub(crate) fn write_file(path: &Path, contents: &str) -> io::Result<()> {
    fs::write(path, contents).map_err(|e| annotate(e, &format!("cannot write {}", path.display())))
}

/// Creates `path` and its parents with a readable error.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path).map_err(|e| annotate(e, &format!("cannot create {}", path.display())))
}

/// Runs `cmd` to completion; on failure returns an error with its output.
pub(crate) fn run_checked(cmd: &mut Command) -> io::Result<std::process::Output> {
    let what = format!("{:?}", cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| annotate(e, &format!("cannot run {what}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        let r = RateLimit::parse("10kb/s").unwrap();
        assert_eq!(r.bytes_per_second, 10240);
        assert_eq!(r.prosody, "10kb/s");
        let r = RateLimit::parse("3000").unwrap();
        assert_eq!(r.bytes_per_second, 3000);
        assert_eq!(r.prosody, "300b/s");
        let r = RateLimit::parse("505 b/s").unwrap();
        assert_eq!(r.bytes_per_second, 505);
        assert_eq!(r.prosody, "51b/s");
        let r = RateLimit::parse("1MB/s").unwrap();
        assert_eq!(r.bytes_per_second, 1 << 20);
        assert_eq!(r.prosody, "1MB/s");
        for bad in [
            "",
            "kb/s",
            "10kb",
            "10 parsecs/s",
            "0",
            "-3",
            "99999999999999999999",
        ] {
            assert!(RateLimit::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(validate_username("Alice.B-c_1").unwrap(), "alice.b-c_1");
        for bad in ["", "a b", "a@b", "ä", "a/b", &"x".repeat(65)] {
            assert!(
                validate_username(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn passwords_differ() {
        let a = random_password().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, random_password().unwrap());
    }

    /// A port that is bound (without `SO_REUSEADDR`) but not listening:
    /// invisible as a listener, yet the server cannot bind it.
    fn occupy_port_without_listening() -> (std::os::fd::OwnedFd, net::PortLease) {
        use std::os::fd::FromRawFd;
        let lease = net::PortLease::new().unwrap();
        // SAFETY: plain socket syscalls on a descriptor we own.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_port = lease.port().to_be();
            addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            assert_eq!(
                libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
                0
            );
            (owned, lease)
        }
    }

    fn check_port_conflicts(kind: ServerKind) {
        let opts = Options::new(kind);
        // Someone else listens on the port: detected from /proc.
        let lease = net::PortLease::new().unwrap();
        let other = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, lease.port())).unwrap();
        let t = Instant::now();
        let err = TestServer::try_start(&opts, None, false, lease).unwrap_err();
        eprintln!("{kind}: {err}");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        drop(other);
        // The port is blocked without a listener: detected from the log.
        let (_socket, lease) = occupy_port_without_listening();
        let t = Instant::now();
        let err = TestServer::try_start(&opts, None, false, lease).unwrap_err();
        eprintln!("{kind}: {err}");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }

    #[test]
    fn prosody_port_conflicts() {
        check_port_conflicts(ServerKind::Prosody);
    }

    #[test]
    fn ejabberd_port_conflicts() {
        check_port_conflicts(ServerKind::Ejabberd);
    }

    #[test]
    fn server_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TestServer>();
    }
}
