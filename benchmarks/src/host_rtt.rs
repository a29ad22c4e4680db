//! Through the host, page to page: the round trip of a payload from one
//! browser page through its host's bridge, XMPP and the other user's host
//! to an echo page and back, beside the library's own round trip (two
//! clients, no host) on the same server in the same run.
//!
//! On Prosody and on ejabberd (each an [`XmppHarness`] with the same
//! configuration as workloads 1-5), five paths, each with two users of
//! its own (on XMPP: two accounts in a room of their own):
//!
//! * **library**: two members of a chat of the harness, one channel each;
//!   one sends a payload stamped with its sequence number and the send
//!   time ([`workloads::stamped`]), the other sends back every payload it
//!   receives; the round trip is the time from the stamp to the moment
//!   [`workloads::await_seq`] sees the echo, one payload in flight
//!   ([`round_trips`]);
//! * **page to page**: each user has an [`XmppTransport`] and a host
//!   ([`Origin::serve`]) serving the app in `benchmarks/apps/rtt/`, each
//!   page in a headless Chromium of its own ([`test_browser::Page`]):
//!   `pinger.html` times its round trips with `performance.now()` from
//!   just before `send()` to its listener seeing the echo, `echo.html`
//!   sends back every payload it receives;
//! * **sockets**: the same hosts with WebSocket clients of this process
//!   ([`Socket`]) speaking the bridge protocol in place of the pages,
//!   measured by the library's code ([`round_trips`]): the hosts without a
//!   browser;
//! * **pages in-process**, **sockets in-process**: the same two on the
//!   host's in-memory transport ([`MemoryChat`]), no server.
//!
//! Page to page − library is what the two hosts add to a round trip: four
//! WebSocket crossings, four passes through a bridge, the pages'
//! JavaScript; sockets − library is the bridges' share of it, page to
//! page − sockets the browser's.
//!
//! Every path first makes sure both directions work by sending until
//! received (the suite's barrier one way and the other for the library
//! and the sockets; a marker every 250 ms until one comes back for the
//! pages). Then, 32 B and then 128000 B: the warm-up round trips of each
//! path, and the measured ones in turns of [`BLOCK`], the paths taking
//! turns, so that a change in the machine's load (other work on two
//! cores) falls on all of them alike.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use spec_backends::xmpp::{XmppChannel, XmppHarness};
use spec_tests::harness::{Channel, Harness, Received, SendFailure};
use test_browser::Page;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use webxdc_host::server::BRIDGE_PATH;
use webxdc_host::transport::memory::MemoryChat;
use webxdc_host::transport::xmpp::XmppTransport;
use webxdc_host::{App, Origin, Transport};
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client, Config};
use xmpp_test_server::ServerKind;

use crate::params::Params;
use crate::report::Res;
use crate::run::progress;
use crate::stats::Summary;
use crate::workloads::{self, await_seq, payload, stamped};
use crate::CONNECT_TIMEOUT;

/// The name `--only` selects this section by.
pub const SECTION: &str = "host-rtt";

/// The app instance every path uses.
const INSTANCE: &str = "rtt";

/// The tag of the bridge's realtime frames (`webxdc.js`'s `TAG_REALTIME`).
const TAG_REALTIME: u8 = 1;

/// Round trips per turn of each path.
pub const BLOCK: usize = 10;

/// How long a page may take to hear a first marker back.
const BARRIER_PATIENCE: Duration = Duration::from_secs(30);

/// Round trips of one size on one path, one payload in flight.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrip {
    pub size: usize,
    pub warmup: usize,
    pub samples: usize,
    /// Round trips that did not come back within the timeout (warm-up
    /// included).
    pub lost: usize,
    pub us: Summary,
}

/// The round trips of one size on every path.
#[derive(Debug, Clone, Serialize)]
pub struct SizeRtt {
    pub size: usize,
    /// Two library clients, no host.
    pub library: Res<RoundTrip>,
    /// Page to page through two hosts.
    pub host: Res<RoundTrip>,
    /// WebSocket clients of this process in place of the pages, through
    /// two hosts on the same server: the hosts without a browser.
    pub sockets: Res<RoundTrip>,
    /// Page to page through two hosts on the host's in-process transport:
    /// the hosts and the browser, no server.
    pub pages_in_process: Res<RoundTrip>,
    /// The sockets through two hosts on the in-process transport: the
    /// hosts alone.
    pub sockets_in_process: Res<RoundTrip>,
}

/// What the pinger page's clock can tell apart.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PageClock {
    /// The smallest step of `performance.now()` seen (µs).
    pub step_us: f64,
    /// Whether the page is cross-origin isolated (Chromium's timer
    /// resolution depends on it).
    pub cross_origin_isolated: bool,
}

/// The section on one server.
#[derive(Debug, Clone, Serialize)]
pub struct HostRtt {
    /// The backend's name: `xmpp-prosody`, `xmpp-ejabberd`.
    pub server: String,
    pub sizes: Res<Vec<SizeRtt>>,
    pub page_clock: Option<PageClock>,
    /// Set-up included (s).
    pub wall_s: f64,
}

/// The section on Prosody, then on ejabberd.
pub async fn run_all(p: &Params) -> Vec<HostRtt> {
    let mut out = Vec::new();
    for kind in [ServerKind::Prosody, ServerKind::Ejabberd] {
        let t0 = Instant::now();
        let mut h = XmppHarness::new(kind);
        let server = h.name();
        eprintln!("== {SECTION} on {server}");
        let mut paths = Vec::new();
        let mut page_clock = None;
        let sizes = on_server(&mut h, p, &mut paths, &mut page_clock).await;
        if let Err(e) = &sizes {
            eprintln!("   FAILED: {e}");
        }
        for path in paths {
            path.stop().await;
        }
        h.shutdown().await;
        out.push(HostRtt {
            server,
            sizes,
            page_clock,
            wall_s: t0.elapsed().as_secs_f64(),
        });
    }
    out
}

/// The paths, in the order of [`SizeRtt`]'s fields.
const PATHS: [&str; 5] = [
    "library",
    "page to page",
    "sockets",
    "pages in-process",
    "sockets in-process",
];

/// Opens the paths (into `paths`, which the caller closes) and measures.
async fn on_server(
    h: &mut XmppHarness,
    p: &Params,
    paths: &mut Vec<Path>,
    page_clock: &mut Option<PageClock>,
) -> Res<Vec<SizeRtt>> {
    let app = app()?;
    let chat = h.new_chat(2).await.map_err(|e| e.to_string())?;
    let a = workloads::join(h, &chat, 0, INSTANCE).await?;
    let b = workloads::join(h, &chat, 1, INSTANCE).await?;
    paths.push(Path::Library(a, b));
    let users = xmpp_users(h, "pages").await?;
    paths.push(Path::Pages(Box::new(Pages::open(&app, users).await?)));
    let users = xmpp_users(h, "sockets").await?;
    paths.push(Path::Sockets(Box::new(Sockets::open(&app, users).await?)));
    paths.push(Path::Pages(Box::new(
        Pages::open(&app, memory_users()).await?,
    )));
    paths.push(Path::Sockets(Box::new(
        Sockets::open(&app, memory_users()).await?,
    )));
    for (path, name) in paths.iter_mut().zip(PATHS) {
        path.barrier()
            .await
            .map_err(|e| format!("{name}: barrier: {e}"))?;
    }
    if let Path::Pages(pages) = &paths[1] {
        *page_clock = pages.clock().await.ok();
    }

    let mut sizes = Vec::new();
    for &(size, warmup, samples) in &p.host_rtt {
        let timeout = if size > 1024 {
            Duration::from_secs(20)
        } else {
            Duration::from_secs(5)
        };
        let mut c = [(); 5].map(|()| Collected::new(size, warmup, samples));
        // Warm-up (not measured), then the turns.
        turn(paths, &mut c, size, warmup, timeout, false).await;
        let mut left = samples;
        while left > 0 {
            let n = left.min(BLOCK);
            left -= n;
            turn(paths, &mut c, size, n, timeout, true).await;
        }
        let c = c.map(Collected::done);
        for (r, name) in c.iter().zip(PATHS) {
            progress(&format!("{name} {size} B"), r);
        }
        let [library, host, sockets, pages_in_process, sockets_in_process] = c;
        sizes.push(SizeRtt {
            size,
            library,
            host,
            sockets,
            pages_in_process,
            sockets_in_process,
        });
    }
    Ok(sizes)
}

/// `n` round trips on each path that still works, one path after the
/// other.
async fn turn(
    paths: &mut [Path],
    c: &mut [Collected; 5],
    size: usize,
    n: usize,
    timeout: Duration,
    measured: bool,
) {
    for (path, c) in paths.iter_mut().zip(c.iter_mut()) {
        if c.ok() {
            c.add(path.round_trips(size, n, timeout).await, measured);
        }
    }
}

/// One way of making round trips.
enum Path {
    /// The library's two channels.
    Library(XmppChannel, XmppChannel),
    Pages(Box<Pages>),
    Sockets(Box<Sockets>),
}

impl Path {
    /// Sends until received, both ways.
    async fn barrier(&mut self) -> Res<()> {
        match self {
            Path::Library(a, b) => channels_barrier(a, b).await,
            Path::Sockets(s) => channels_barrier(&mut s.pinger, &mut s.echo).await,
            Path::Pages(p) => p.barrier().await.map(|_| ()),
        }
    }

    async fn round_trips(&mut self, size: usize, n: usize, timeout: Duration) -> Res<Turn> {
        match self {
            Path::Library(a, b) => round_trips(a, b, size, n, timeout).await,
            Path::Sockets(s) => round_trips(&mut s.pinger, &mut s.echo, size, n, timeout).await,
            Path::Pages(p) => p.round_trips(size, n, timeout).await,
        }
    }

    async fn stop(self) {
        match self {
            Path::Library(mut a, mut b) => {
                a.leave().await;
                b.leave().await;
            }
            Path::Sockets(s) => (*s).stop().await,
            Path::Pages(p) => (*p).stop().await,
        }
    }
}

/// The suite's barrier from `a` to `b`, then from `b` to `a`.
async fn channels_barrier<C: Channel>(a: &mut C, b: &mut C) -> Res<()> {
    spec_tests::sync::barrier(a, &mut [&mut *b]).await?;
    spec_tests::sync::barrier(b, &mut [&mut *a]).await
}

/// Round-trip times (µs) and losses of one path, turn by turn.
struct Collected {
    size: usize,
    warmup: usize,
    samples: usize,
    us: Vec<f64>,
    lost: usize,
    error: Option<String>,
}

impl Collected {
    fn new(size: usize, warmup: usize, samples: usize) -> Self {
        Collected {
            size,
            warmup,
            samples,
            us: Vec::new(),
            lost: 0,
            error: None,
        }
    }

    fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Adds a turn's losses, and its times if `measured` (not a warm-up).
    fn add(&mut self, turn: Res<Turn>, measured: bool) {
        match turn {
            Ok(t) => {
                self.lost += t.lost;
                if measured {
                    self.us.extend(t.us);
                }
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn done(self) -> Res<RoundTrip> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(RoundTrip {
                size: self.size,
                warmup: self.warmup,
                samples: self.samples,
                lost: self.lost,
                us: Summary::of(&self.us),
            }),
        }
    }
}

/// One turn of round trips: the times (µs) of those that came back, how
/// many did not.
#[derive(Debug, Clone, Deserialize)]
pub struct Turn {
    pub us: Vec<f64>,
    pub lost: usize,
}

/// `n` round trips from `a` to `b` and back, one in flight: `b` sends
/// back every payload it receives.
pub async fn round_trips<C: Channel>(
    a: &mut C,
    b: &mut C,
    size: usize,
    n: usize,
    timeout: Duration,
) -> Res<Turn> {
    let done = AtomicBool::new(false);
    let echo_failed = AtomicBool::new(false);
    let pinger = async {
        let mut buf = payload(size);
        let mut us = Vec::with_capacity(n);
        let mut lost = 0;
        let mut result = Ok(());
        for _ in 0..n {
            // Sequence numbers go on from turn to turn: an echo that came
            // back too late for its turn is never taken for a later one.
            let i = SEQ.fetch_add(1, Ordering::Relaxed);
            stamped(&mut buf, i);
            if let Err(e) = a.send(&buf).await {
                result = Err(format!("send: {e:?}"));
                break;
            }
            match await_seq(a, i, timeout).await {
                Ok((arrived, at)) => us.push(arrived.saturating_sub(at) as f64 / 1000.0),
                Err(e) if e.starts_with("payload") => {
                    lost += 1;
                    if echo_failed.load(Ordering::Acquire) {
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        done.store(true, Ordering::Release);
        result.map(|()| Turn { us, lost })
    };
    let echo = async {
        let mut result = Ok(());
        while !done.load(Ordering::Acquire) {
            // Short waits, to notice the end; a wait that times out loses
            // nothing (the next one gets the payload).
            match b.recv(Duration::from_millis(50)).await {
                Received::Payload(p) => {
                    if let Err(e) = b.send(&p).await {
                        result = Err(format!("echo: send: {e:?}"));
                        break;
                    }
                }
                // The pinger counts what does not come back.
                Received::Timeout | Received::Lagged(_) => {}
                other => {
                    result = Err(format!("echo: {other:?}"));
                    break;
                }
            }
        }
        echo_failed.store(result.is_err(), Ordering::Release);
        result
    };
    let (pinged, echoed) = tokio::join!(pinger, echo);
    echoed?;
    pinged
}

/// The sequence numbers of [`round_trips`].
static SEQ: AtomicU64 = AtomicU64::new(0);

/// `benchmarks/apps/rtt/`.
fn app_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("apps/rtt")
}

/// The benchmark app, if the browser is there to show it.
fn app() -> Res<Arc<App>> {
    for path in [test_browser::CHROMIUM, test_browser::CHROMEDRIVER] {
        if !std::path::Path::new(path).exists() {
            return Err(format!(
                "{path} is missing (install Debian's chromium and chromium-driver)"
            ));
        }
    }
    let app = App::load(&app_dir()).map_err(|e| format!("apps/rtt: {e}"))?;
    Ok(Arc::new(app))
}

/// The pinger's and the echo's transports, and the clients behind them
/// (to close at the end).
struct Users {
    transports: [Arc<dyn Transport>; 2],
    clients: Vec<Client>,
}

/// Two users of an in-process chat of their own (each payload reaches
/// every other channel of its instance in a chat).
fn memory_users() -> Users {
    let chat = MemoryChat::new();
    Users {
        transports: [Arc::new(chat.user("pinger")), Arc::new(chat.user("echo"))],
        clients: Vec::new(),
    }
}

/// Two new accounts on the harness's server, `{name}-pinger` and
/// `{name}-echo`, in a room `host-rtt-{name}` of their own.
async fn xmpp_users(h: &mut XmppHarness, name: &str) -> Res<Users> {
    let names = [format!("{name}-pinger"), format!("{name}-echo")];
    let (accounts, addr, muc) = h
        .with_server(move |s| {
            let accounts = [s.account(&names[0])?, s.account(&names[1])?];
            Ok((accounts, s.c2s_addr(), s.muc_domain().to_owned()))
        })
        .await
        .map_err(|e| e.to_string())?;
    let room = BareJid::new(&format!("host-rtt-{name}@{muc}")).map_err(|e| e.to_string())?;
    let mut clients = Vec::new();
    let mut transports = Vec::new();
    for (jid, password) in accounts {
        let jid = BareJid::new(&jid).map_err(|e| e.to_string())?;
        let config = Config::new(jid.clone(), password)
            .danger_plaintext_loopback_only(addr)
            .with_connect_timeout(CONNECT_TIMEOUT);
        let client = Client::connect(config)
            .await
            .map_err(|e| format!("connecting {jid}: {e}"))?;
        clients.push(client.clone());
        let chat = client
            .group(room.clone())
            .await
            .map_err(|e| format!("entering {room}: {e}"))?;
        transports.push(Arc::new(XmppTransport::new(client, chat)) as Arc<dyn Transport>);
    }
    let [pinger, echo]: [Arc<dyn Transport>; 2] = transports
        .try_into()
        .map_err(|_| "two transports".to_owned())?;
    Ok(Users {
        transports: [pinger, echo],
        clients,
    })
}

/// A host for each user, serving the app: the pinger's, the echo's.
struct Hosts {
    origins: [Origin; 2],
    clients: Vec<Client>,
}

impl Hosts {
    async fn serve(app: &Arc<App>, users: Users) -> Res<Hosts> {
        let [pinger, echo] = users.transports;
        let serve = |t: Arc<dyn Transport>| async move {
            Origin::serve(app.clone(), t, INSTANCE)
                .await
                .map_err(|e| format!("serving the app: {e}"))
        };
        Ok(Hosts {
            origins: [serve(pinger).await?, serve(echo).await?],
            clients: users.clients,
        })
    }

    /// Stops serving (a page still connected leaves its channel), then
    /// closes the clients.
    async fn stop(self) {
        for o in self.origins {
            o.stop().await;
        }
        for c in self.clients {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.shutdown()).await;
        }
    }
}

/// The two pages, each in a browser of its own, and their hosts.
struct Pages {
    pinger: Page,
    echo: Page,
    hosts: Hosts,
}

impl Pages {
    /// A host for each user, and the pinger and the echo page open.
    async fn open(app: &Arc<App>, users: Users) -> Res<Pages> {
        let hosts = Hosts::serve(app, users).await?;
        let [pinger, echo] = &hosts.origins;
        let pinger_url = format!("{}pinger.html", pinger.url());
        let echo_url = format!("{}echo.html", echo.url());
        // test-browser panics where it cannot go on: a task of its own
        // turns that into this section's error.
        let (pinger, echo) = tokio::join!(
            tokio::spawn(Page::open(pinger_url)),
            tokio::spawn(Page::open(echo_url))
        );
        let (pinger, echo) = match (pinger, echo) {
            (Ok(p), Ok(e)) => (p, e),
            (p, e) => {
                let why = [p.err(), e.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(format!("opening the pages: {why}"));
            }
        };
        // A whole turn is one script call that returns when it is done.
        let timeouts =
            fantoccini::wd::TimeoutConfiguration::new(Some(Duration::from_secs(600)), None, None);
        pinger
            .client
            .update_timeouts(timeouts)
            .await
            .map_err(|e| format!("script timeout: {e}"))?;
        Ok(Pages {
            pinger,
            echo,
            hosts,
        })
    }

    /// Runs `script` in the pinger page (a promise it returns is awaited).
    async fn pinger(&self, script: &str, args: Vec<serde_json::Value>) -> Res<serde_json::Value> {
        self.pinger
            .client
            .execute(script, args)
            .await
            .map_err(|e| format!("pinger page: {e}"))
    }

    /// Sends markers until one comes back; how many were sent.
    async fn barrier(&self) -> Res<u64> {
        let patience = BARRIER_PATIENCE.as_millis() as u64;
        let rounds = self
            .pinger(
                "return rtt.barrier(250, arguments[0])",
                vec![patience.into()],
            )
            .await?;
        rounds
            .as_u64()
            .ok_or_else(|| format!("barrier: unexpected result {rounds}"))
    }

    async fn clock(&self) -> Res<PageClock> {
        let v = self.pinger("return rtt.clock()", vec![]).await?;
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// `n` round trips of `size` bytes, timed in the page.
    async fn round_trips(&self, size: usize, n: usize, timeout: Duration) -> Res<Turn> {
        let args = vec![size.into(), n.into(), (timeout.as_millis() as u64).into()];
        let v = self
            .pinger(
                "return rtt.run(arguments[0], arguments[1], arguments[2])",
                args,
            )
            .await?;
        serde_json::from_value(v).map_err(|e| format!("pinger page: {e}"))
    }

    /// Closes the pages (their bridges leave their channels), then the
    /// hosts.
    async fn stop(self) {
        let Pages {
            pinger,
            echo,
            hosts,
        } = self;
        // Ending a browser session blocks (a plain request in `Drop`).
        let _ = tokio::task::spawn_blocking(move || drop((pinger, echo))).await;
        hosts.stop().await;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of a host's bridge in place of a page: joined, it
/// sends and receives realtime frames as `webxdc.js` does (binary, a tag
/// byte, the payload).
pub struct Socket {
    ws: Ws,
}

impl Socket {
    /// Connects to `origin`'s bridge as its page would, and joins.
    pub async fn join(origin: &Origin) -> Res<Socket> {
        let url = format!(
            "ws://{}{BRIDGE_PATH}?secret={}",
            origin.addr(),
            origin.secret()
        );
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        let from = origin.origin().parse().map_err(|e| format!("{e}"))?;
        request.headers_mut().insert("origin", from);
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("connecting to the bridge: {e}"))?;
        ws.send(Message::Text(r#"{"op":"join"}"#.into()))
            .await
            .map_err(|e| format!("join: {e}"))?;
        Ok(Socket { ws })
    }
}

impl Channel for Socket {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(TAG_REALTIME);
        frame.extend_from_slice(data);
        self.ws
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|e| SendFailure::Other(e.to_string()))
    }

    async fn recv(&mut self, timeout: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            return match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => Received::Timeout,
                Ok(Some(Ok(Message::Binary(b)))) if b.first() == Some(&TAG_REALTIME) => {
                    Received::Payload(b[1..].to_vec())
                }
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => Received::Closed,
                // The bridge's reports (text): what they are about shows
                // as payloads that do not come back.
                Ok(Some(Ok(_))) => continue,
            };
        }
    }

    async fn leave(&mut self) {
        let _ = self
            .ws
            .send(Message::Text(r#"{"op":"leave"}"#.into()))
            .await;
    }
}

/// The pinger's and the echo's [`Socket`], and their hosts.
struct Sockets {
    pinger: Socket,
    echo: Socket,
    hosts: Hosts,
}

impl Sockets {
    async fn open(app: &Arc<App>, users: Users) -> Res<Sockets> {
        let hosts = Hosts::serve(app, users).await?;
        Ok(Sockets {
            pinger: Socket::join(&hosts.origins[0]).await?,
            echo: Socket::join(&hosts.origins[1]).await?,
            hosts,
        })
    }

    async fn stop(self) {
        let Sockets {
            mut pinger,
            mut echo,
            hosts,
        } = self;
        pinger.leave().await;
        echo.leave().await;
        drop((pinger, echo));
        hosts.stop().await;
    }
}
