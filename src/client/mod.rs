//! The IO side: an XMPP connection of our own, driven by one tokio task.
//!
//! [`Client::connect`] logs in (STARTTLS by default), spawns the task that
//! does all IO, and returns a cheap, cloneable handle. [`Client::group`]
//! enters a room (no history) and [`Client::direct`] names a 1:1 chat; both
//! give a chat handle whose
//! [`join_realtime_channel`](GroupChat::join_realtime_channel) returns a
//! [`Channel`].
//!
//! # Who owns the engine
//!
//! The [engine](crate::engine) sits behind a mutex shared by the handles and
//! the task (quinn's model: shared state plus a wake-up). Handles make their
//! state changes under a short lock and never wait for the task: `join`,
//! `leave` and the checks of `send` answer at once, with the same typed
//! errors as the engine. The task alone does IO: it feeds the engine every
//! stanza the stream delivers and transmits what the engine queued. A
//! handle that queued a stanza wakes the task through the bounded command
//! queue.
//!
//! # Sending
//!
//! A sender faster than the server is held back by send slots: a payload
//! takes one *before* it is queued (`send().await` waits for it, first
//! come first served), and it is free again once the task handed the
//! stanza to the stream. There are 64. The task hands stanzas to the
//! stream while the send window has room: at most 64 stanzas and about
//! 256 KiB that wait for the server's XEP-0198 confirmation (see
//! `actor.rs`), so the slots free up at the pace the server confirms.
//! Until then they wait in the task's scheduler (`schedule.rs`), one queue
//! per channel, taken in turn: a channel's payloads keep their order, and
//! a small payload of one channel goes out behind at most one payload of
//! each other busy channel, not behind a whole file that another channel
//! queued in 126000-byte chunks.
//!
//! # Our own echoes
//!
//! A room reflects each groupchat message to its sender. The client gives
//! the ids of its group frames a random prefix of its own
//! ([`EngineConfig::frame_id_prefix`](crate::EngineConfig::frame_id_prefix)),
//! and its connection drops the content of a reflected frame that carries
//! it before tokio-xmpp parses it (`connector.rs`): the sender no longer
//! pays a whole receive for a copy it throws away.
//! [`Client::echoes_skipped`] counts them.
//!
//! # Files
//!
//! * `mod.rs`: the configuration and the handles.
//! * `actor.rs`: the task (one `select!` over the stream and the commands).
//! * `login.rs`: one login attempt, with its failure classified.
//! * `reconnect.rs`: the reconnect policy (back-off, reporting).
//! * `connector.rs`: STARTTLS and loopback-plaintext connectors.
//!
//! Connection trouble is reported, never hidden: every channel receives
//! [`crate::Delivery::Connection`] items, and
//! [`Client::events`] yields [`ClientEvent`]s (including each failed
//! reconnection attempt, and [`ClientEvent::ConnectionDropped`] when the
//! client knows why a connection ended: a stream error from the server,
//! or a server that sent more than the client holds). After a
//! reconnection that could not resume the old session the rooms are
//! joined again by themselves.
//!
//! # Rejoin policy
//!
//! A room that removed us by its own decision (kicked, banned, made
//! members-only, destroyed:
//! [`RemovalReason::is_decision`](crate::RemovalReason::is_decision)) is not entered
//! again by itself, not even after a reconnection; every channel of the
//! room receives [`Delivery::Removed`]. If the automatic re-entry after a
//! reconnection is refused (we were banned, the room became members-only
//! or another occupant took our nick while we were away), every channel
//! receives `Removed(Banned)`, `Removed(MembersOnly)` or
//! `Removed(NickTaken)` and the room is not tried again. A re-entry
//! refused for a reason that may pass (`item-not-found`,
//! `service-unavailable`, `resource-constraint`, an unreachable remote
//! server: a room service still starting after its server restarted
//! answers that way) is asked again after 1, 2, 4 and 8 s, the channels
//! untold; the fifth such refusal in a row is final and reaches every
//! channel as `Removed(Refused(condition))`
//! ([`REENTRY_ATTEMPTS`](crate::engine::REENTRY_ATTEMPTS)). A technical
//! removal (service shutdown) is entered again at once. A re-entry that
//! gets no answer within
//! [`REENTRY_ANSWER_WAIT`](crate::engine::REENTRY_ANSWER_WAIT) (10 s)
//! counts like such a refusal (asked again, finally `Removed(NoAnswer)`).
//! A room that bounces our groupchat message with `not-acceptable` or
//! `item-not-found` no longer has us (XEP-0410; its cluster node crashed):
//! it is entered again, its channels told
//! [`ConnectionEvent::Disconnected`]
//! and, once back, `Reconnected { resumed: false }`. [`Client::group`]
//! enters a room again; a refusal then is [`GroupError::Refused`].

mod actor;
mod connector;
mod login;
mod reconnect;
mod schedule;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use jid::{BareJid, FullJid, Jid};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::stanzastream::{Event, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::Timeouts;

use crate::engine::{ArchiveOutcome, ChannelId, Chat, Engine, EngineConfig, EngineEvent};
use crate::error::{ConnectError, GroupError, JoinError, SendError, UpdateError, UploadError};
use crate::inbox::{ConnectionEvent, Delivery, Inbox, QueueLimits, TryRecvError};
use crate::wire::muc::SelfOccupant;
use crate::wire::share::{SharedApp, SharedAppFrame};
use crate::wire::update::{StatusUpdate, UpdateFrame};
use crate::wire::upload::{Slot, UploadService};
use actor::{Actor, Command, UploadRequest};
pub use connector::{DisconnectCause, MAX_DEPTH, MAX_STANZA_BYTES};
#[doc(hidden)]
pub use connector::{EchoSkip, Guard};
use login::LoginError;
use reconnect::{first_login, Reconnector};

/// Depth of the command queue between handles and the task, and of the
/// stream's own queues: enough to keep the socket busy, small enough that a
/// slow server pushes back on senders instead of filling memory.
const QUEUE_DEPTH: usize = 64;

/// How many stanzas sent by handles may wait for room in the send window
/// (see the module docs on sending).
const SEND_SLOTS: usize = QUEUE_DEPTH;

/// How many items an [`Updates`] reader may fall behind before it misses
/// some (it is then told how many with [`UpdateItem::Missed`]).
const UPDATE_FEED_DEPTH: usize = 1024;

/// How many [`ClientEvent`]s a slow [`Events`] reader may fall behind
/// before it misses some (it is then told how many with
/// [`ClientEvent::Missed`]).
const EVENT_BUFFER: usize = 256;

/// How the client reaches the server.
#[derive(Debug, Clone)]
enum Transport {
    /// STARTTLS, certificate checked against the system roots (or the file
    /// named by `SSL_CERT_FILE`). `None`: find the server by DNS SRV.
    StartTls(Option<(String, u16)>),
    /// No encryption at all; loopback addresses only.
    PlaintextLoopback(SocketAddr),
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Config {
    jid: BareJid,
    password: String,
    transport: Transport,
    connect_timeout: Duration,
    join_timeout: Duration,
    resource: Option<String>,
    nick: Option<String>,
    keepalive: (Duration, Duration),
    engine: EngineConfig,
}

impl Config {
    /// Log in as `jid` with `password` over STARTTLS, finding the server by
    /// DNS SRV records for the JID's domain (falling back to port 5222).
    /// Certificates are checked against the system roots; a test CA works
    /// through the `SSL_CERT_FILE` environment variable.
    pub fn new(jid: BareJid, password: impl Into<String>) -> Self {
        Config {
            jid,
            password: password.into(),
            transport: Transport::StartTls(None),
            connect_timeout: Duration::from_secs(15),
            keepalive: (Duration::from_secs(15), Duration::from_secs(10)),
            join_timeout: Duration::from_secs(15),
            resource: None,
            nick: None,
            engine: EngineConfig::default(),
        }
    }

    /// Connect to `host:port` instead of looking up SRV records (still
    /// STARTTLS; the certificate must be valid for the JID's domain).
    pub fn with_server(mut self, host: impl Into<String>, port: u16) -> Self {
        self.transport = Transport::StartTls(Some((host.into(), port)));
        self
    }

    /// **Unencrypted** connection to a server on a loopback address, for
    /// tests and demos against a throwaway local server only. Connecting
    /// fails with [`ConnectError::Config`] if `addr` is not a loopback
    /// address, so this can never leak a password over a network.
    pub fn danger_plaintext_loopback_only(mut self, addr: SocketAddr) -> Self {
        self.transport = Transport::PlaintextLoopback(addr);
        self
    }

    /// How long [`Client::connect`] may take before it gives up (default
    /// 15 s). Also bounds each later reconnection attempt.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`Client::group`] waits for the room (default 15 s).
    pub fn with_join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// Ask the server for this resource (default: the server picks one).
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// How a dead connection is noticed: after `idle` without data from
    /// the server the client asks it for an answer (a XEP-0198 request, or
    /// whitespace), and if none comes within `answer` the connection is
    /// declared dead, reported ([`ConnectionEvent::Disconnected`]) and
    /// re-established. Defaults: 15 s and 10 s, so a frozen server or a
    /// half-open connection is noticed within 25 s (a realtime channel is
    /// useless long before tokio-xmpp's own 60 s + 15 s would notice).
    pub fn with_keepalive(mut self, idle: Duration, answer: Duration) -> Self {
        self.keepalive = (idle, answer);
        self
    }

    /// The nick to use in rooms. It must be unique to this device: by
    /// default it is the account's local part plus a random suffix.
    pub fn with_nick(mut self, nick: impl Into<String>) -> Self {
        self.nick = Some(nick.into());
        self
    }

    /// Limits of each channel's receive queue.
    pub fn with_queue_limits(mut self, limits: QueueLimits) -> Self {
        self.engine.queue = limits;
        self
    }
}

/// What happens to the connection and the rooms, read from [`Events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The connection was lost or is back: the same events every channel
    /// receives as [`Delivery::Connection`].
    Connection(ConnectionEvent),
    /// A reconnection attempt failed; another follows after a back-off.
    ReconnectFailed {
        /// Attempts so far in this outage.
        attempt: u32,
        /// Why it failed.
        error: String,
    },
    /// Why the connection is being dropped, when the client knows: the
    /// server closed the stream with a stream error, or sent what the
    /// client refuses to hold (see [`DisconnectCause`]). Comes just before
    /// [`ConnectionEvent::Disconnected`]; the client then reconnects as
    /// after any loss.
    ConnectionDropped(DisconnectCause),
    /// A room event from the engine (joined, left, refused, bounce).
    Room(EngineEvent),
    /// This reader fell behind and missed this many events.
    Missed {
        /// How many events were lost to this reader.
        count: u64,
    },
    /// The server closed a session before it confirmed (XEP-0198) this
    /// many of the stanzas sent on it, and a new session replaced it: those
    /// payloads (and presences) may never have reached the room. Sends
    /// after this event go out on the new session.
    Unconfirmed {
        /// How many stanzas were lost unconfirmed.
        stanzas: u64,
    },
    /// The client stopped: shut down, or the stream failed fatally.
    Closed,
}

/// A subscription to a client's [`ClientEvent`]s, from
/// [`Client::events`]. Each subscriber has its own bounded buffer; one that
/// falls behind loses the oldest events and is told with
/// [`ClientEvent::Missed`].
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<ClientEvent>,
    /// [`ClientEvent::Closed`] was given (or the client was already shut
    /// down at subscription): nothing follows, and the handles keep the
    /// channel's sender alive, so waiting for more would never end.
    ended: bool,
}

impl Events {
    /// Waits for the next event; `None` once the client is gone (after
    /// [`ClientEvent::Closed`], or at once for a subscription made after
    /// shutdown).
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        if self.ended {
            return None;
        }
        let ev = match self.rx.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(count)) => ClientEvent::Missed { count },
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        self.ended = ev == ClientEvent::Closed;
        Some(ev)
    }

    /// Takes the next event without waiting ([`TryRecvError::Closed`] once
    /// the client is gone).
    pub fn try_recv(&mut self) -> Result<ClientEvent, TryRecvError> {
        if self.ended {
            return Err(TryRecvError::Closed);
        }
        match self.rx.try_recv() {
            Ok(ClientEvent::Closed) => {
                self.ended = true;
                Ok(ClientEvent::Closed)
            }
            Ok(ev) => Ok(ev),
            Err(broadcast::error::TryRecvError::Lagged(count)) => Ok(ClientEvent::Missed { count }),
            Err(broadcast::error::TryRecvError::Empty) => Err(TryRecvError::Empty),
            Err(broadcast::error::TryRecvError::Closed) => Err(TryRecvError::Closed),
        }
    }
}

/// State shared by the task and the handles.
pub(crate) struct Shared {
    engine: Mutex<Engine>,
    nick: String,
    closed: Arc<AtomicBool>,
    /// A session is bound or resumed on the stream's current connection
    /// (read by the reconnector, see `reconnect.rs`).
    session_up: Arc<AtomicBool>,
    /// Why the last connection was dropped, when its guard knows (see
    /// `connector.rs`); reported when the stream says it is suspended.
    causes: connector::Causes,
    /// Our frames' id prefix, and the count of their echoes the guards
    /// dropped unread.
    echo: connector::EchoSkip,
}

impl Shared {
    /// The engine is only ever locked for short, non-blocking calls.
    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    /// See the module docs on sending.
    send_slots: Arc<Semaphore>,
    shutdown: mpsc::Sender<oneshot::Sender<()>>,
    events: broadcast::Sender<ClientEvent>,
    join_timeout: Duration,
}

/// A connected XMPP account. Cheap to clone; the connection lives until
/// [`shutdown`](Client::shutdown) or until every clone and every channel is
/// dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("jid", &self.jid()).finish()
    }
}

impl Client {
    /// Connects and logs in. Fails with a typed error within the configured
    /// connect timeout: [`ConnectError::Auth`] at once for refused
    /// credentials, [`ConnectError::Unreachable`] when the server cannot be
    /// reached (connection errors are retried until the timeout).
    pub async fn connect(mut config: Config) -> Result<Client, ConnectError> {
        if config.jid.node().is_none() {
            return Err(ConnectError::Config(
                "the JID needs a local part (user@domain)".into(),
            ));
        }
        let causes = connector::Causes::default();
        let echo = connector::EchoSkip::random();
        config.engine.frame_id_prefix = echo.prefix();
        match config.transport.clone() {
            Transport::StartTls(server) => {
                let dns = match server {
                    None => DnsConfig::srv_default_client(config.jid.domain().as_str()),
                    Some((host, port)) => DnsConfig::no_srv(&host, port),
                };
                Self::connect_with(
                    connector::StartTls(dns, causes.clone(), echo.clone()),
                    config,
                    causes,
                    echo,
                )
                .await
            }
            Transport::PlaintextLoopback(addr) => {
                if !addr.ip().is_loopback() {
                    return Err(ConnectError::Config(format!(
                        "plaintext connections are allowed to loopback addresses only, not {addr}"
                    )));
                }
                tracing::warn!(%addr, "unencrypted XMPP connection (loopback test mode)");
                let dns = DnsConfig::addr(&addr.to_string());
                Self::connect_with(
                    connector::Plaintext(dns, causes.clone(), echo.clone()),
                    config,
                    causes,
                    echo,
                )
                .await
            }
        }
    }

    async fn connect_with<C: ServerConnector + Sync>(
        connector: C,
        config: Config,
        causes: connector::Causes,
        echo: connector::EchoSkip,
    ) -> Result<Client, ConnectError> {
        let deadline = tokio::time::Instant::now() + config.connect_timeout;
        let identity: Jid = match &config.resource {
            Some(r) => config
                .jid
                .with_resource_str(r)
                .map(Jid::from)
                .map_err(|e| ConnectError::Config(format!("invalid resource: {e}")))?,
            None => Jid::from(config.jid.clone()),
        };
        let timeouts = Timeouts {
            read_timeout: config.keepalive.0,
            response_timeout: config.keepalive.1,
        };
        let unreachable = |last_error: String| ConnectError::Unreachable {
            timeout: config.connect_timeout,
            last_error,
        };
        let first = first_login(
            &connector,
            &identity,
            &config.password,
            timeouts,
            config.connect_timeout,
        )
        .await
        .map_err(|e| match e {
            LoginError::Auth(a) => ConnectError::Auth(a),
            LoginError::Transport(e) => unreachable(e),
        })?;

        let closed = Arc::new(AtomicBool::new(false));
        let session_up = Arc::new(AtomicBool::new(false));
        let (report_tx, report_rx) = mpsc::channel(16);
        let reconnector = Reconnector {
            connector,
            identity,
            password: config.password.clone(),
            timeouts,
            attempt_timeout: config.connect_timeout,
            first: Arc::new(Mutex::new(Some(first))),
            reports: report_tx,
            shutdown: closed.clone(),
            session_up: session_up.clone(),
            broken_in_a_row: Default::default(),
            handed_at: Default::default(),
            short_in_a_row: Default::default(),
        };
        let mut stream = StanzaStream::new(reconnector.into_callback(), QUEUE_DEPTH);
        let own = match tokio::time::timeout_at(deadline, bind(&mut stream)).await {
            Ok(Ok(own)) => own,
            Ok(Err(e)) => return Err(unreachable(e)),
            Err(_) => {
                closed.store(true, Ordering::Release);
                return Err(unreachable("no resource binding before the timeout".into()));
            }
        };

        let nick = config.nick.clone().unwrap_or_else(|| {
            let local = config.jid.node().map(|n| n.as_str()).unwrap_or("peer");
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            format!("{local}-{}", &suffix[..8])
        });
        let shared = Arc::new(Shared {
            engine: Mutex::new(Engine::new(config.engine.clone())),
            nick,
            closed,
            session_up,
            causes,
            echo,
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE_DEPTH);
        let (shutdown_tx, shutdown_rx) = mpsc::channel(4);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let mut actor = Actor {
            shared: shared.clone(),
            stream,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            scheduler: Default::default(),
            held: VecDeque::new(),
            acked_in_session: false,
            priority: VecDeque::new(),
            blocked: false,
            commands: cmd_rx,
            shutdown: shutdown_rx,
            reports: report_rx,
            events: events.clone(),
            room_waiters: Default::default(),
            update_feeds: Vec::new(),
            upload_waiters: HashMap::new(),
            app_listings: Vec::new(),
            reentries: Vec::new(),
        };
        // The session is already bound: set it up before handing out
        // handles, so that the engine knows our JID from the start.
        actor.start_session(own);
        tokio::spawn(actor.run());
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                commands: cmd_tx,
                send_slots: Arc::new(Semaphore::new(SEND_SLOTS)),
                shutdown: shutdown_tx,
                events,
                join_timeout: config.join_timeout,
            }),
        })
    }

    /// How many of the rooms' reflections of this client's own payloads
    /// were dropped before they were parsed (see the [module docs](self):
    /// the room must keep our message ids, as Prosody and ejabberd do;
    /// where it does not, every echo is parsed and dropped by the engine,
    /// and this stays 0). Delivery is the same either way.
    pub fn echoes_skipped(&self) -> u64 {
        self.inner.shared.echo.count()
    }

    /// The full JID the server bound this session to (the resource may
    /// change after a reconnection that could not resume the session).
    pub fn jid(&self) -> FullJid {
        self.inner
            .shared
            .engine()
            .own_jid()
            .cloned()
            .expect("the engine knows our JID before connect returns")
    }

    /// The nick this client uses in rooms.
    pub fn nick(&self) -> &str {
        &self.inner.shared.nick
    }

    /// Subscribes to connection and room events (from now on).
    pub fn events(&self) -> Events {
        // Subscribe first, then look: shutdown sets the flag before it
        // sends Closed, so either this receiver gets Closed or it sees the
        // flag.
        let rx = self.inner.events.subscribe();
        Events {
            rx,
            ended: self.inner.shared.closed.load(Ordering::Acquire),
        }
    }

    /// Enters the multi-user chat `room` (asking for no history) and waits
    /// until the room confirms. Entering a room already entered returns at
    /// once. The room is entered again by itself after a reconnection.
    ///
    /// # Errors
    ///
    /// * [`GroupError::NotARoom`] at once for a domain-only address, or an
    ///   address on our own server's domain (accounts, not rooms).
    /// * [`GroupError::Refused`] when the room (or the server for it)
    ///   refuses: banned, members-only, nick taken, password, or a MUC
    ///   service that does not exist (Prosody says `not-allowed`, ejabberd
    ///   `forbidden`).
    /// * [`GroupError::Timeout`] after the join timeout when nothing
    ///   answers: what an address on another server with no MUC service
    ///   behind it gives.
    /// * [`GroupError::Closed`] after [`shutdown`](Client::shutdown).
    ///
    /// All of them are listed in `docs/errors.md`.
    pub async fn group(&self, room: BareJid) -> Result<GroupChat, GroupError> {
        // A domain is a service, never a room, and our own server's domain
        // holds accounts, not rooms (a MUC service is a host of its own): a
        // join presence to either gets no answer and could only time out.
        let own_domain = self
            .inner
            .shared
            .engine()
            .own_jid()
            .is_some_and(|me| me.domain() == room.domain());
        if room.node().is_none() || own_domain {
            return Err(GroupError::NotARoom(room));
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::EnterRoom {
                room: room.clone(),
                reply,
            })
            .await
            .map_err(|_| GroupError::Closed)?;
        match tokio::time::timeout(self.inner.join_timeout, answer).await {
            Ok(Ok(Ok(()))) => Ok(GroupChat {
                client: self.clone(),
                room,
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(GroupError::Closed),
            Err(_) => Err(GroupError::Timeout {
                room,
                timeout: self.inner.join_timeout,
            }),
        }
    }

    /// A 1:1 chat with `contact` (by bare JID). Nothing is sent until a
    /// channel sends.
    pub fn direct(&self, contact: BareJid) -> DirectChat {
        DirectChat {
            client: self.clone(),
            contact,
        }
    }

    /// Wakes the task after a state change of the engine that queued
    /// stanzas. `reserve` first, change the engine, then `send` the permit:
    /// see the module docs on backpressure.
    async fn reserve(&self) -> Option<mpsc::Permit<'_, Command>> {
        self.inner.commands.reserve().await.ok()
    }

    /// Like [`reserve`](Self::reserve), for a handle that will queue a
    /// stanza: waits for a send slot first (see the module docs on
    /// sending), then for room in the command queue. Send the permit with
    /// `Command::Queued(slot)`.
    async fn reserve_send(
        &self,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, mpsc::Permit<'_, Command>)> {
        let slot = self.inner.send_slots.clone().acquire_owned().await.ok()?;
        let permit = self.reserve().await?;
        Some((slot, permit))
    }

    /// Finds the server's HTTP upload service (XEP-0363) by service
    /// discovery: `Ok(None)` when it offers none.
    pub async fn upload_service(&self) -> Result<Option<UploadService>, UploadError> {
        match self.upload(UploadRequest::FindService).await? {
            EngineEvent::UploadService { service, .. } => service.map_err(UploadError::Refused),
            _ => Err(UploadError::Closed),
        }
    }

    /// Asks `service` for a slot to upload a file of `size` bytes named
    /// `filename`: PUT it to the slot's `put_url` with its headers, then
    /// share its `get_url`.
    pub async fn request_upload_slot(
        &self,
        service: &UploadService,
        filename: &str,
        size: u64,
        content_type: Option<&str>,
    ) -> Result<Slot, UploadError> {
        if let Some(max) = service.max_size.filter(|max| size > *max) {
            return Err(UploadError::BadFile(format!(
                "{size} bytes is more than the service takes ({max} bytes)"
            )));
        }
        let request = UploadRequest::Slot {
            service: service.jid.clone(),
            filename: filename.to_owned(),
            size,
            content_type: content_type.map(str::to_owned),
        };
        match self.upload(request).await? {
            EngineEvent::UploadSlot { slot, .. } => slot.map_err(UploadError::Refused),
            _ => Err(UploadError::Closed),
        }
    }

    async fn upload(&self, request: UploadRequest) -> Result<EngineEvent, UploadError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Upload { request, reply })
            .await
            .map_err(|_| UploadError::Closed)?;
        answer.await.map_err(|_| UploadError::Closed)?
    }

    /// Leaves every room, closes the connection cleanly and ends every
    /// channel. Afterwards every call of every handle answers at once:
    /// `Closed` errors ([`SendError::Closed`], [`GroupError::Closed`],
    /// [`JoinError::Closed`], [`UpdateError::Closed`],
    /// [`UploadError::Closed`]), ended streams (`None`), as the table in
    /// `docs/errors.md` lists. Calling it again returns at once.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.inner.shutdown.send(done).await.is_ok() {
            let _ = finished.await;
        }
    }

    fn join(&self, chat: Chat, thread: &str) -> Result<Channel, JoinError> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(JoinError::Closed);
        }
        let (id, inbox) = self.inner.shared.engine().join(chat, thread)?;
        Ok(Channel {
            id,
            inbox,
            client: self.clone(),
        })
    }
}

/// A multi-user chat room the client is in.
#[derive(Debug, Clone)]
pub struct GroupChat {
    client: Client,
    room: BareJid,
}

impl GroupChat {
    /// The room's JID.
    pub fn room(&self) -> &BareJid {
        &self.room
    }

    /// Who we are in the room now: our nick, the room's occupant id for us
    /// (XEP-0421) and whether the room shows real JIDs to everyone. `None`
    /// while the room is not joined (for instance during a reconnection).
    pub fn self_occupant(&self) -> Option<SelfOccupant> {
        self.client
            .inner
            .shared
            .engine()
            .self_occupant(&self.room)
            .cloned()
    }

    /// Joins the realtime channel of the app instance `thread` (the
    /// `<thread/>` of the webxdc message) in this room.
    ///
    /// # Errors
    ///
    /// * [`JoinError::AlreadyJoined`] while another channel of this client
    ///   for the same instance is not left.
    /// * [`JoinError::InvalidThread`] for an empty or blank thread, or one
    ///   with a character XML cannot carry; [`JoinError::ThreadTooLong`]
    ///   for one over [`MAX_THREAD`](crate::wire::MAX_THREAD) bytes.
    /// * [`JoinError::Closed`] after [`Client::shutdown`].
    pub fn join_realtime_channel(&self, thread: &str) -> Result<Channel, JoinError> {
        self.client.join(Chat::Group(self.room.clone()), thread)
    }

    /// Sends a webxdc status update for app instance `thread` into the
    /// room, to be stored in its archive. Every member's [`Updates`] feed
    /// gets it, ours included.
    ///
    /// # Errors
    ///
    /// [`UpdateError::InvalidThread`] / [`UpdateError::ThreadTooLong`] for
    /// a bad thread (as [`join_realtime_channel`](Self::join_realtime_channel)),
    /// [`UpdateError::TooLarge`], [`UpdateError::NotJson`],
    /// [`UpdateError::Disconnected`], [`UpdateError::RoomNotJoined`], and
    /// [`UpdateError::Closed`] after [`Client::shutdown`]. Nothing is sent
    /// in any of these cases.
    pub async fn send_update(
        &self,
        thread: &str,
        update: &StatusUpdate,
    ) -> Result<(), UpdateError> {
        let (slot, permit) = self
            .client
            .reserve_send()
            .await
            .ok_or(UpdateError::Closed)?;
        if self.client.inner.shared.closed.load(Ordering::Acquire) {
            return Err(UpdateError::Closed);
        }
        self.client.inner.shared.engine().send_update(
            &Chat::Group(self.room.clone()),
            thread,
            update,
        )?;
        permit.send(Command::Queued(slot));
        Ok(())
    }

    /// The status updates of app instance `thread`: first every update the
    /// room's archive keeps (oldest first, marked `archived`), then
    /// [`UpdateItem::ArchiveEnd`], then the live ones as they arrive, ours
    /// included. An update that arrives live while the archive is read is
    /// given once. Realtime payloads are never among them.
    ///
    /// # Errors
    ///
    /// [`UpdateError::InvalidThread`] / [`UpdateError::ThreadTooLong`] for
    /// a bad thread, [`UpdateError::Busy`] when too many archive reads are
    /// under way, [`UpdateError::Closed`] after [`Client::shutdown`].
    pub async fn updates(&self, thread: &str) -> Result<Updates, UpdateError> {
        crate::wire::validate_thread(thread).map_err(UpdateError::thread)?;
        let (reply, answer) = oneshot::channel();
        self.client
            .inner
            .commands
            .send(Command::WatchUpdates {
                room: self.room.clone(),
                thread: thread.to_owned(),
                reply,
            })
            .await
            .map_err(|_| UpdateError::Closed)?;
        answer.await.map_err(|_| UpdateError::Closed)?
    }

    /// Shares `app` into the room: Cheogram's file message (see
    /// [`wire::share`](crate::wire::share)), whose thread is the instance id.
    /// Every member sees it as an [`EngineEvent::AppShared`] among the
    /// client's events, ours included.
    ///
    /// # Errors
    ///
    /// [`UpdateError::InvalidThread`] / [`UpdateError::ThreadTooLong`] for
    /// a bad `app.thread`, [`UpdateError::Disconnected`],
    /// [`UpdateError::RoomNotJoined`], [`UpdateError::Closed`] after
    /// [`Client::shutdown`].
    pub async fn share_app(&self, app: &SharedApp) -> Result<(), UpdateError> {
        let (slot, permit) = self
            .client
            .reserve_send()
            .await
            .ok_or(UpdateError::Closed)?;
        if self.client.inner.shared.closed.load(Ordering::Acquire) {
            return Err(UpdateError::Closed);
        }
        self.client
            .inner
            .shared
            .engine()
            .share_app(&Chat::Group(self.room.clone()), app)?;
        permit.send(Command::Queued(slot));
        Ok(())
    }

    /// The apps shared into the room earlier, as the room's archive keeps
    /// them (oldest first). Apps shared from now on arrive as
    /// [`EngineEvent::AppShared`] among [`Client::events`].
    ///
    /// # Errors
    ///
    /// [`UpdateError::Busy`] when too many archive reads are under way,
    /// [`UpdateError::RoomNotJoined`], [`UpdateError::Closed`] after
    /// [`Client::shutdown`].
    pub async fn shared_apps(&self) -> Result<Vec<SharedAppFrame>, UpdateError> {
        let (reply, answer) = oneshot::channel();
        self.client
            .inner
            .commands
            .send(Command::ListApps {
                room: self.room.clone(),
                reply,
            })
            .await
            .map_err(|_| UpdateError::Closed)?;
        answer.await.map_err(|_| UpdateError::Closed)?
    }

    /// Leaves the room: sends our unavailable presence and ends every
    /// channel of the room (their streams end; sends fail with
    /// [`SendError::Left`]). The room is no longer joined again after a
    /// reconnection. [`Client::group`] enters it again.
    pub async fn leave(self) {
        let Some(permit) = self.client.reserve().await else {
            return; // shut down: out of every room already
        };
        self.client.inner.shared.engine().leave_room(&self.room);
        permit.send(Command::Wake);
    }
}

/// One item of an [`Updates`] feed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateItem {
    /// A status update; `archived` when it was read from the room's
    /// archive rather than received live.
    Update {
        /// The update, its sender, and its archive id if the room gave one.
        frame: UpdateFrame,
        /// Whether it comes from the archive.
        archived: bool,
    },
    /// The archive has been read; live updates follow.
    ArchiveEnd(ArchiveOutcome),
    /// The reader fell behind and this many updates were lost to it.
    Missed {
        /// How many.
        count: u64,
    },
}

/// The status updates of one app instance, from [`GroupChat::updates`]:
/// a bounded feed that ends (`None`) when the client shuts down or the
/// room is left.
#[derive(Debug)]
pub struct Updates {
    rx: mpsc::Receiver<UpdateItem>,
}

impl Updates {
    /// Waits for the next item.
    pub async fn recv(&mut self) -> Option<UpdateItem> {
        self.rx.recv().await
    }

    /// Takes the next item without waiting.
    pub fn try_recv(&mut self) -> Result<UpdateItem, TryRecvError> {
        self.rx.try_recv().map_err(|e| match e {
            mpsc::error::TryRecvError::Empty => TryRecvError::Empty,
            mpsc::error::TryRecvError::Disconnected => TryRecvError::Closed,
        })
    }
}

impl Stream for Updates {
    type Item = UpdateItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<UpdateItem>> {
        self.rx.poll_recv(cx)
    }
}

/// A 1:1 chat with a contact.
#[derive(Debug, Clone)]
pub struct DirectChat {
    client: Client,
    contact: BareJid,
}

impl DirectChat {
    /// The contact's bare JID.
    pub fn contact(&self) -> &BareJid {
        &self.contact
    }

    /// Joins the realtime channel of the app instance `thread` with this
    /// contact. The errors are those of
    /// [`GroupChat::join_realtime_channel`].
    pub fn join_realtime_channel(&self, thread: &str) -> Result<Channel, JoinError> {
        self.client.join(Chat::Direct(self.contact.clone()), thread)
    }
}

/// One joined realtime channel: send with [`send`](Channel::send), receive
/// as a [`Stream`] of [`Delivery`] items (or [`recv`](Channel::recv) /
/// [`try_recv`](Channel::try_recv)), end with [`leave`](Channel::leave).
/// Dropping the channel leaves it.
#[derive(Debug)]
pub struct Channel {
    id: ChannelId,
    inbox: Inbox,
    client: Client,
}

impl Channel {
    /// Sends `data` (at most 128000 bytes) to every other peer of the
    /// channel. Errors are checked before anything is sent: oversize, left,
    /// disconnected, room not joined. Waits while 64 payloads of this
    /// client wait to be handed to the connection, which takes them as the
    /// server confirms what it has (XEP-0198), so a sender cannot outrun
    /// the server; a server without XEP-0198 confirms nothing, and then it
    /// waits only for the socket. The channels of a client take turns, so
    /// a payload of one channel does not wait for everything another
    /// channel queued (see the [module docs](crate::client) on sending); a
    /// channel's own payloads go out in order.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] over 128000 bytes, [`SendError::Left`] after
    /// [`leave`](Channel::leave) (or leaving its room),
    /// [`SendError::Disconnected`], [`SendError::RoomNotJoined`], and
    /// [`SendError::Closed`] after [`Client::shutdown`]. Nothing is sent
    /// in any of these cases.
    pub async fn send(&self, data: &[u8]) -> Result<(), SendError> {
        // The engine checks everything (and checks again below, as the
        // state may change while we wait), but a send that cannot succeed
        // must not first wait for a queue slot.
        let shared = &self.client.inner.shared;
        let checked = shared.engine().check_send(self.id, data.len());
        match checked {
            // Shutdown ended every channel: say why.
            Err(SendError::Left) if shared.closed.load(Ordering::Acquire) => {
                return Err(SendError::Closed)
            }
            other => other?,
        }
        let (slot, permit) = self.client.reserve_send().await.ok_or(SendError::Closed)?;
        if shared.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        shared.engine().send(self.id, data)?;
        permit.send(Command::Queued(slot));
        Ok(())
    }

    /// Waits for the next delivery; `None` once the channel is left or the
    /// client is shut down.
    pub async fn recv(&self) -> Option<Delivery> {
        self.inbox.recv().await
    }

    /// Takes the next delivery without waiting.
    pub fn try_recv(&self) -> Result<Delivery, TryRecvError> {
        self.inbox.try_recv()
    }

    /// Leaves the channel: delivery stops at once, later sends fail with
    /// [`SendError::Left`]. Idempotent.
    pub fn leave(&mut self) {
        self.client.inner.shared.engine().leave(self.id);
    }

    /// Whether the channel was left (by [`leave`](Channel::leave), by
    /// leaving its room, or by shutdown).
    pub fn is_left(&self) -> bool {
        !self.client.inner.shared.engine().is_joined(self.id)
    }

    /// The channel's id in the engine (as in [`EngineEvent`]s and engine
    /// outputs).
    pub fn id(&self) -> ChannelId {
        self.id
    }

    /// The client this channel belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Stream for Channel {
    type Item = Delivery;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.inbox.poll_recv(cx)
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Waits for the stream's resource binding: our full JID.
async fn bind(stream: &mut StanzaStream) -> Result<FullJid, String> {
    loop {
        match stream.next().await {
            Some(Event::Stream(StreamEvent::Reset { bound_jid, .. })) => {
                return bound_jid
                    .try_into_full()
                    .map_err(|j| format!("server bound a JID without resource: {j}"))
            }
            Some(_) => continue,
            None => return Err("the stream closed during resource binding".to_owned()),
        }
    }
}
