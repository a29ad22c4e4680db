//! [`TestServer`]: the handle, and the glue between its API and the
//! per-kind halves (`prosody.rs`, `ejabberd.rs`) and the process
//! supervision (`process.rs`).

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::accounts::{random_password, validate_username};
use crate::files::tail_lines;
use crate::process::{NotReady, Process, StdoutReader};
use crate::rate::RateLimit;
use crate::util::annotate;
use crate::{ejabberd, net, prosody, tls, Options, ServerKind, DOMAIN, UPLOAD_DOMAIN};

/// How many fresh ports [`TestServer::start`] tries when the chosen port
/// turns out to be taken by someone else between picking and binding it.
const PORT_ATTEMPTS: usize = 4;
/// Interval between polls of a cluster node's Mnesia peers.
const CLUSTER_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Files of one server inside its temporary directory.
pub(crate) struct Layout {
    /// The temporary directory itself.
    pub(crate) root: PathBuf,
    /// The server's own log file.
    pub(crate) server_log: PathBuf,
    /// Everything the server process wrote to stdout/stderr (early start-up
    /// errors end up here, before the server's logging is configured).
    pub(crate) console_log: PathBuf,
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
    /// The server process of the current run.
    process: Process,
    port: net::PortLease,
    /// The HTTP port of the upload service, with [`Options::http_upload`].
    http_port: Option<net::PortLease>,
    /// The s2s port, with [`Options::s2s_nameserver`].
    s2s_port: Option<net::PortLease>,
    /// The XMPP domain ([`Options::domain`] or `localhost`).
    domain: String,
    /// `conference.<domain>`.
    muc_domain: String,
    ca_file: Option<PathBuf>,
    layout: Layout,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a fresh server configured by `opts` and waits (at most 60 s)
    /// until it accepts client connections for `localhost`.
    ///
    /// Installs the server software with `apt-get` if it is missing (and
    /// `openssl` when `opts.tls` is set). The error message includes the
    /// tail of the server's log if it fails to start.
    pub fn start(opts: Options) -> io::Result<TestServer> {
        Self::start_as(opts, None)
    }

    /// [`TestServer::start`] for a node of an
    /// [`EjabberdCluster`](crate::EjabberdCluster) when `cluster` is set
    /// (the node is started alone; `cluster.rs` joins it).
    pub(crate) fn start_as(
        opts: Options,
        cluster: Option<ejabberd::ClusterNode>,
    ) -> io::Result<TestServer> {
        let rate = opts
            .c2s_rate_limit
            .as_deref()
            .map(RateLimit::parse)
            .transpose()?;
        match opts.kind {
            ServerKind::Prosody => prosody::ensure_installed()?,
            ServerKind::Ejabberd => ejabberd::ensure_installed()?,
        }
        if opts.kind == ServerKind::Prosody && opts.s2s_nameserver.is_some() {
            prosody::ensure_resolver_installed()?;
        }
        let debug = std::env::var_os("XMPP_TEST_SERVER_DEBUG").is_some_and(|v| v != "0");
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = net::PortLease::new()?;
            match Self::try_start(&opts, rate.as_ref(), debug, port, cluster.as_ref()) {
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
        cluster: Option<&ejabberd::ClusterNode>,
    ) -> io::Result<TestServer> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("xmpp-test-server-{}-", opts.kind))
            .tempdir()
            .map_err(|e| annotate(e, "cannot create the temporary directory"))?;
        let root = dir.path().to_path_buf();
        let upload = opts.http_upload || opts.http_upload_tls;
        if upload && opts.kind != ServerKind::Prosody {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "HTTP upload is offered with Prosody only, not {}",
                    opts.kind
                ),
            ));
        }
        let http_port = if upload {
            Some(net::PortLease::new()?)
        } else {
            None
        };
        let domain = validate_domain(opts.domain.as_deref().unwrap_or(DOMAIN))?;
        let muc_domain = format!("conference.{domain}");
        let s2s_port = match opts.s2s_nameserver {
            Some(_) => Some(net::PortLease::new()?),
            None => None,
        };
        let s2s = match (opts.s2s_nameserver, &s2s_port) {
            (Some(nameserver), Some(port)) => Some(S2sConfig {
                port: port.port(),
                nameserver,
            }),
            _ => None,
        };
        let certs = if opts.tls || opts.http_upload_tls {
            Some(tls::generate(&root.join("tls"))?)
        } else {
            None
        };
        let config = ServerConfig {
            root: &root,
            muc_archive: opts.muc_archive,
            rate,
            certs: certs.as_ref(),
            c2s_tls: opts.tls,
            debug,
            http_port: http_port.as_ref().map(net::PortLease::port),
            https: opts.http_upload_tls,
            domain: &domain,
            muc_domain: &muc_domain,
            user_archive: opts.user_archive,
            s2s,
            cluster,
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
            process: Process::new(),
            port,
            http_port,
            s2s_port,
            domain,
            muc_domain,
            ca_file: certs.map(|c| c.ca),
            layout,
            dir,
        };
        match cluster.and_then(|node| node.join.as_deref()) {
            Some(seed) => server.launch_joining(seed)?,
            None => server.launch()?,
        }
        Ok(server)
    }

    /// The XMPP domain: `"localhost"` unless [`Options::domain`] says
    /// otherwise.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The MUC service domain: `"conference.localhost"`, or
    /// `conference.<domain>` with [`Options::domain`].
    pub fn muc_domain(&self) -> &str {
        &self.muc_domain
    }

    /// Where the server accepts server-to-server connections
    /// (`127.0.0.1:PORT`), with [`Options::s2s_nameserver`]. The port stays
    /// the same across [`TestServer::restart`].
    pub fn s2s_addr(&self) -> Option<SocketAddrV4> {
        self.s2s_port
            .as_ref()
            .map(|p| SocketAddrV4::new(Ipv4Addr::LOCALHOST, p.port()))
    }

    /// Where the server accepts client connections: `127.0.0.1:PORT`. The
    /// port stays the same across [`TestServer::restart`].
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port.port()))
    }

    /// The XEP-0363 upload service and the address of its HTTP server,
    /// when [`Options::http_upload`] (or [`Options::http_upload_tls`]) is
    /// set: `("upload.localhost", 127.0.0.1:PORT)`. Slots it hands out
    /// start with [`TestServer::http_upload_url`].
    pub fn http_upload(&self) -> Option<(&str, SocketAddr)> {
        self.http_port.as_ref().map(|p| {
            (
                UPLOAD_DOMAIN,
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p.port())),
            )
        })
    }

    /// Where the upload's slot URLs start, when upload is offered:
    /// `http://127.0.0.1:PORT/`, or with [`Options::http_upload_tls`]
    /// `https://localhost:PORT/` (the name the certificate is for).
    pub fn http_upload_url(&self) -> Option<String> {
        let port = self.http_port.as_ref()?.port();
        Some(if self.opts.http_upload_tls {
            format!("https://{DOMAIN}:{port}/")
        } else {
            format!("http://127.0.0.1:{port}/")
        })
    }

    /// The PEM file of the throwaway CA that signed the server certificate
    /// (for `localhost` and `conference.localhost`), when [`Options::tls`]
    /// or [`Options::http_upload_tls`] is set.
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
        self.process.pid()
    }

    /// The temporary directory holding the server's config, data and logs
    /// (removed when the server is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates the account `name@<domain>` with a random password and
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
            Backend::Prosody(p) => p.create_account(&name, &password, &self.domain)?,
            Backend::Ejabberd(_) => {
                let mut control = self.process.control();
                let control = control.as_mut().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotConnected, "ejabberd is not running")
                })?;
                ejabberd::create_account(control, &name, &password, &self.domain)?;
            }
        }
        Ok((format!("{name}@{}", self.domain), password))
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
        let ejabberd = matches!(self.backend, Backend::Ejabberd(_));
        // ejabberd stops faster when asked over its command channel than
        // on SIGTERM; Prosody handles SIGTERM promptly.
        self.process
            .stop(|control| ejabberd && ejabberd::request_stop(control));
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
        let (cmd, stdout_reader): (_, Option<StdoutReader>) = match &self.backend {
            Backend::Prosody(p) => (p.command(), None),
            Backend::Ejabberd(e) => (e.command(), Some(ejabberd::spawn_stdout_reader)),
        };
        self.process.spawn(cmd, &self.layout, stdout_reader)?;
        let result = match self
            .process
            .wait_ready(self.c2s_addr(), &self.domain, &self.layout)
        {
            Ok(()) => Ok(()),
            Err(NotReady::Io(e)) => Err(e),
            Err(NotReady::Failed(kind, reason)) => Err(self.start_error(kind, &reason)),
        };
        // A cluster node that restarts is ready once it is back in its
        // cluster, not merely serving clients.
        let result = result.and_then(|()| self.wait_clustered());
        if result.is_err() {
            self.stop();
        }
        result
    }

    /// Whether the server process runs (started and not stopped since).
    pub(crate) fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Whether this is a node of an ejabberd cluster.
    pub(crate) fn is_cluster_node(&self) -> bool {
        matches!(&self.backend, Backend::Ejabberd(e) if e.is_cluster_node())
    }

    /// Evaluates an Erlang expression in this ejabberd node (see
    /// `ejabberd::cluster_eval`).
    pub(crate) fn eval(&self, expr: &str, timeout: Duration) -> io::Result<String> {
        if !matches!(self.backend, Backend::Ejabberd(_)) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only ejabberd evaluates Erlang",
            ));
        }
        let mut control = self.process.control();
        let control = control.as_mut().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "ejabberd is not running")
        })?;
        ejabberd::cluster_eval(control, expr, timeout)
    }

    /// The first start of a node that joins the cluster of `seed`: the
    /// VM without ejabberd, then the join (which starts ejabberd).
    fn launch_joining(&mut self, seed: &str) -> io::Result<()> {
        let Backend::Ejabberd(e) = &self.backend else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only ejabberd joins a cluster",
            ));
        };
        let cmd = e.bare_command();
        self.process
            .spawn(cmd, &self.layout, Some(ejabberd::spawn_stdout_reader))?;
        let result = self.join_cluster(seed);
        if result.is_err() {
            self.stop();
        }
        result
    }

    /// Joins this cluster node to the cluster of the node `seed` and
    /// waits until it serves clients and is in the cluster.
    fn join_cluster(&mut self, seed: &str) -> io::Result<()> {
        // ejabberd's own join (what `ejabberdctl join_cluster` runs):
        // it replaces this node's database with a copy of the cluster's
        // and (re)starts ejabberd, which needs the applications that
        // `ejabberd:start/0` would have started first.
        let reply = self.eval(
            &format!(
                "begin [{{ok, _}} = application:ensure_all_started(A) \
                 || A <- [sasl, ssl, syntax_tools]], \
                 ejabberd_cluster_mnesia:join('{seed}') end."
            ),
            crate::process::READY_TIMEOUT,
        )?;
        if reply != "ok" {
            return Err(io::Error::other(format!(
                "{} could not join the cluster of {seed}: {reply}\n--- log tail ---\n{}",
                self.c2s_addr(),
                self.log_tail(40)
            )));
        }
        let (addr, domain) = (self.c2s_addr(), self.domain().to_owned());
        match self.process.wait_ready(addr, &domain, &self.layout) {
            Ok(()) => self.wait_clustered(),
            Err(NotReady::Io(e)) => Err(e),
            Err(NotReady::Failed(kind, reason)) => Err(self.start_error(kind, &reason)),
        }
    }

    /// For a cluster node: waits (at most 60 s) until every node of its
    /// cluster that is up (answers a ping) is a running Mnesia peer of
    /// this one. Nothing to wait for otherwise.
    fn wait_clustered(&self) -> io::Result<()> {
        if !self.is_cluster_node() {
            return Ok(());
        }
        // The nodes of the schema that are up but not (yet) connected:
        // `[]` once this node is back in its cluster. A node that is down
        // answers `pang` at once (nothing listens on its port), so a
        // stopped peer does not hold up a restart.
        const MISSING: &str = "begin Running = mnesia:system_info(running_db_nodes), \
            [N || N <- mnesia:system_info(db_nodes), not lists:member(N, Running), \
            net_adm:ping(N) =:= pong] end.";
        let deadline = Instant::now() + crate::process::READY_TIMEOUT;
        loop {
            let missing = self.eval(MISSING, crate::process::READY_TIMEOUT)?;
            if missing == "[]" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.start_error(
                    io::ErrorKind::TimedOut,
                    &format!("not back in its cluster: {missing} are up but not connected"),
                ));
            }
            std::thread::sleep(CLUSTER_POLL_INTERVAL);
        }
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
            .field("pid", &self.process.pid())
            .field("running", &self.process.is_running())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Everything the per-kind config writers need.
pub(crate) struct ServerConfig<'a> {
    pub(crate) root: &'a Path,
    pub(crate) muc_archive: bool,
    pub(crate) rate: Option<&'a RateLimit>,
    /// The throwaway certificates, when c2s TLS or HTTPS upload needs them.
    pub(crate) certs: Option<&'a tls::Certs>,
    /// Require STARTTLS on c2s (with `certs`).
    pub(crate) c2s_tls: bool,
    pub(crate) debug: bool,
    /// The HTTP port of the upload service, if one is offered.
    pub(crate) http_port: Option<u16>,
    /// The upload's port speaks HTTPS (with `certs`), not HTTP.
    pub(crate) https: bool,
    /// The XMPP domain and its MUC service.
    pub(crate) domain: &'a str,
    pub(crate) muc_domain: &'a str,
    /// Archive users' messages ([`Options::user_archive`]).
    pub(crate) user_archive: bool,
    /// Server-to-server, with [`Options::s2s_nameserver`].
    pub(crate) s2s: Option<S2sConfig>,
    /// Distribution settings of an ejabberd cluster node.
    pub(crate) cluster: Option<&'a ejabberd::ClusterNode>,
}

/// Server-to-server settings of one server.
#[derive(Clone, Copy)]
pub(crate) struct S2sConfig {
    /// The port to listen on, on `127.0.0.1`.
    pub(crate) port: u16,
    /// The only DNS server to ask (port 53).
    pub(crate) nameserver: Ipv4Addr,
}

/// Checks [`Options::domain`]: lower-case letters, digits, `-` and `.`,
/// non-empty labels. It ends up in config files, file names and Erlang
/// terms, so nothing that needs quoting gets through.
fn validate_domain(domain: &str) -> io::Result<String> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(domain.to_owned())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a lower-case DNS name: {domain:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

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
        let err = TestServer::try_start(&opts, None, false, lease, None).unwrap_err();
        eprintln!("{kind}: {err}");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        drop(other);
        // The port is blocked without a listener: detected from the log.
        let (_socket, lease) = occupy_port_without_listening();
        let t = Instant::now();
        let err = TestServer::try_start(&opts, None, false, lease, None).unwrap_err();
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
