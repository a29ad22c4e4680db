//! The library's client against a Prosody or ejabberd started with chosen
//! [`Options`], for workload 8 (a throttled server beside our recommended
//! one) and workload 6 (memory).
//!
//! The suite's `XmppHarness` always starts its server with default options
//! and keeps its clients private. Workload 8 needs a rate-limited server and
//! needs to watch what the library tells the application meanwhile
//! (`Client::events()`), so this harness does the same mapping (participant
//! = account, member = connected client, chat = MUC room) with both exposed.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};
use tokio::sync::broadcast;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{
    Client, ClientEvent, Config, Delivery, GroupChat, JoinError, SendError,
};
use xmpp_test_server::{Options, TestServer};

/// Hang guard for logins on a loaded machine.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the clients reported through `Client::events()`, counted by kind.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EventCounts {
    pub disconnected: u64,
    pub reconnect_failed: u64,
    pub reconnected: u64,
    pub closed: u64,
    pub room: u64,
    /// Events a subscriber missed because it read too slowly.
    pub lagged: u64,
}

/// Runs blocking server work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, HarnessError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(HarnessError::new),
        Err(e) => Err(HarnessError(format!("server task failed: {e}"))),
    }
}

/// Starts a throwaway server with `opts` (blocking work off the runtime).
pub async fn start_server(opts: Options) -> Result<Arc<TestServer>, HarnessError> {
    Ok(Arc::new(blocking(move || TestServer::start(opts)).await?))
}

/// Connects a fresh account to `server` and counts its events into
/// `events`.
pub async fn connect_new(
    server: &Arc<TestServer>,
    name: String,
    events: Option<Arc<Mutex<EventCounts>>>,
) -> Result<Client, HarnessError> {
    let s = server.clone();
    let (jid, password) = blocking(move || s.account(&name)).await?;
    let jid: BareJid = jid.parse().map_err(HarnessError::new)?;
    let config = Config::new(jid, password)
        .danger_plaintext_loopback_only(server.c2s_addr())
        .with_connect_timeout(CONNECT_TIMEOUT);
    let client = Client::connect(config)
        .await
        .map_err(|e| HarnessError(format!("connect: {e}")))?;
    if let Some(counts) = events {
        let mut rx = client.events();
        tokio::spawn(async move {
            loop {
                let ev = rx.recv().await;
                let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    Ok(ClientEvent::Disconnected) => c.disconnected += 1,
                    Ok(ClientEvent::ReconnectFailed { .. }) => c.reconnect_failed += 1,
                    Ok(ClientEvent::Reconnected { .. }) => c.reconnected += 1,
                    Ok(ClientEvent::Closed) => {
                        c.closed += 1;
                        break;
                    }
                    Ok(ClientEvent::Room(_)) => c.room += 1,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => c.lagged += n,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    Ok(client)
}

/// The harness. See the module docs.
pub struct LibXmppHarness {
    label: String,
    opts: Options,
    // Clients drop before the server (field order).
    chats: Vec<(BareJid, Vec<GroupChat>)>,
    clients: Vec<Client>,
    server: Option<Arc<TestServer>>,
    /// Every client's events, counted.
    pub events: Arc<Mutex<EventCounts>>,
    /// Prosody only: a text replacement in `prosody.cfg.lua` before the
    /// server is (re)started, to compare one setting against the
    /// recommended configuration.
    config_edit: Option<(String, String)>,
}

/// A chat: an index into the harness.
#[derive(Debug, Clone, Copy)]
pub struct LibChat(usize);

impl LibXmppHarness {
    /// A harness named `label` whose server is started with `opts`.
    pub fn new(label: &str, opts: Options) -> Self {
        LibXmppHarness {
            label: label.to_owned(),
            opts,
            chats: Vec::new(),
            clients: Vec::new(),
            server: None,
            events: Arc::default(),
            config_edit: None,
        }
    }

    /// Replaces `from` by `to` in Prosody's config before the measurement
    /// (the test server writes the recommended configuration; this takes a
    /// setting out or adds one, then restarts on the same port).
    pub fn with_config_edit(mut self, from: &str, to: &str) -> Self {
        self.config_edit = Some((from.to_owned(), to.to_owned()));
        self
    }

    async fn server(&mut self) -> Result<Arc<TestServer>, HarnessError> {
        if let Some(s) = &self.server {
            return Ok(s.clone());
        }
        let opts = self.opts.clone();
        let edit = self.config_edit.clone();
        let s = Arc::new(
            blocking(move || {
                let mut server = TestServer::start(opts)?;
                if let Some((from, to)) = edit {
                    let path = server.dir().join("prosody.cfg.lua");
                    let cfg = std::fs::read_to_string(&path)?;
                    if !cfg.contains(&from) {
                        return Err(io::Error::other(format!("{from:?} not in prosody.cfg.lua")));
                    }
                    std::fs::write(&path, cfg.replace(&from, &to))?;
                    server.restart()?;
                }
                Ok(server)
            })
            .await?,
        );
        self.server = Some(s.clone());
        Ok(s)
    }

    /// Closes every client cleanly (bounded), then stops the server off the
    /// async workers.
    pub async fn shutdown(mut self) {
        self.chats.clear();
        for c in self.clients.drain(..) {
            // A throttled server may hold megabytes of our data in socket
            // buffers; the clean close queues behind them, so bound it.
            let _ = tokio::time::timeout(Duration::from_secs(5), c.shutdown()).await;
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::task::spawn_blocking(move || drop(s)).await;
        }
    }
}

impl Harness for LibXmppHarness {
    type Chat = LibChat;
    type Channel = LibChannel;

    fn name(&self) -> String {
        self.label.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn new_chat(&mut self, members: usize) -> Result<LibChat, HarnessError> {
        let server = self.server().await?;
        let room: BareJid = format!("bench{}@{}", self.chats.len(), server.muc_domain())
            .parse()
            .map_err(HarnessError::new)?;
        let mut groups = Vec::with_capacity(members);
        for _ in 0..members {
            let name = format!("u{}", self.clients.len());
            let client = connect_new(&server, name, Some(self.events.clone())).await?;
            let group = client
                .group(room.clone())
                .await
                .map_err(|e| HarnessError(format!("entering {room}: {e}")))?;
            self.clients.push(client);
            groups.push(group);
        }
        self.chats.push((room, groups));
        Ok(LibChat(self.chats.len() - 1))
    }

    async fn other_chat(&mut self, chat: &LibChat) -> Result<LibChat, HarnessError> {
        let n = self.chats.get(chat.0).map(|c| c.1.len()).unwrap_or(0);
        self.new_chat(n).await
    }

    async fn join(
        &mut self,
        chat: &LibChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<LibChannel, JoinFailure>, HarnessError> {
        let group = self
            .chats
            .get(chat.0)
            .and_then(|c| c.1.get(member))
            .ok_or_else(|| HarnessError(format!("no member {member}")))?;
        Ok(match group.join_realtime_channel(instance) {
            Ok(inner) => Ok(LibChannel { inner }),
            Err(JoinError::AlreadyJoined) => Err(JoinFailure::AlreadyJoined),
            Err(e) => Err(JoinFailure::Other(e.to_string())),
        })
    }

    async fn add_device(&mut self, _: &LibChat, _: Member) -> Result<Member, HarnessError> {
        Err(HarnessError::new("not needed by the benchmark"))
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        Err(HarnessError::new("not needed by the benchmark"))
    }
}

/// A library channel.
pub struct LibChannel {
    inner: webxdc_realtime_xmpp::Channel,
}

impl Channel for LibChannel {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        self.inner.send(data).await.map_err(|e| match e {
            SendError::TooLarge { .. } => SendFailure::TooLarge,
            SendError::Left => SendFailure::Left,
            other => SendFailure::Other(other.to_string()),
        })
    }

    async fn recv(&mut self, timeout: Duration) -> Received {
        tokio::time::timeout(timeout, async {
            loop {
                match self.inner.next().await {
                    Some(Delivery::Payload(p)) => return Received::Payload(p.data),
                    Some(Delivery::Lagged { dropped }) => return Received::Lagged(dropped),
                    // Connection notices are counted through the client's
                    // events instead.
                    Some(_) => continue,
                    None => return Received::Closed,
                }
            }
        })
        .await
        .unwrap_or(Received::Timeout)
    }

    async fn leave(&mut self) {
        self.inner.leave();
    }
}
