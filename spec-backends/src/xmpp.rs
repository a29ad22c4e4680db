//! The XMPP backend: the library's [`Client`] against a real, throwaway
//! Prosody or ejabberd on loopback.
//!
//! Each harness starts its own server (lazily, on the first call that needs
//! it, so that constructing a harness is cheap and cannot fail). A
//! participant is an account; a member is a connected [`Client`] (a
//! device); a chat is a MUC room that every member enters when the chat is
//! made; a second device is a second `Client` on the same account with
//! another resource (and so its own nick); a restart restarts the server
//! process, and the clients reconnect and re-enter their rooms by
//! themselves.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client, Config, GroupChat};
use xmpp_test_server::{Options, ServerKind, TestServer};

use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};

/// How long a client may take to connect (a hang guard, generous for a
/// loaded machine).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

type Server = Arc<Mutex<TestServer>>;

fn lock(server: &Server) -> std::sync::MutexGuard<'_, TestServer> {
    // The server handle has no invariant a panicking holder could break.
    server.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs blocking server work (process start, account creation, restart)
/// off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, HarnessError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(HarnessError::new),
        Err(e) => Err(HarnessError(format!("server task failed: {e}"))),
    }
}

struct Participant {
    jid: BareJid,
    password: String,
    devices: usize,
}

struct Device {
    client: Client,
    participant: usize,
}

struct ChatState {
    room: BareJid,
    /// Device index of each member number.
    members: Vec<usize>,
    /// The entered room, per member number.
    groups: Vec<GroupChat>,
}

/// A chat of the XMPP backend (an index into the harness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmppChat(usize);

/// The XMPP backend, parameterised by server software. See the
/// [module docs](self).
pub struct XmppHarness {
    // Field order matters on drop: the clients go first, so their tasks
    // see every handle gone and close their streams, then the server stops.
    chats: Vec<ChatState>,
    devices: Vec<Device>,
    participants: Vec<Participant>,
    kind: ServerKind,
    server: Option<Server>,
}

impl XmppHarness {
    /// A harness on a throwaway Prosody.
    pub fn prosody() -> Self {
        Self::new(ServerKind::Prosody)
    }

    /// A harness on a throwaway ejabberd.
    pub fn ejabberd() -> Self {
        Self::new(ServerKind::Ejabberd)
    }

    /// A harness on a throwaway server of `kind`.
    pub fn new(kind: ServerKind) -> Self {
        XmppHarness {
            chats: Vec::new(),
            devices: Vec::new(),
            participants: Vec::new(),
            kind,
            server: None,
        }
    }

    /// The server, started on first use.
    async fn server(&mut self) -> Result<Server, HarnessError> {
        if let Some(s) = &self.server {
            return Ok(s.clone());
        }
        let opts = Options::new(self.kind);
        let server = blocking(move || TestServer::start(opts))
            .await
            .map_err(|e| HarnessError(format!("starting {}: {e}", self.kind)))?;
        let server = Arc::new(Mutex::new(server));
        self.server = Some(server.clone());
        Ok(server)
    }

    async fn new_participant(&mut self) -> Result<usize, HarnessError> {
        let server = self.server().await?;
        let name = format!("member{}", self.participants.len());
        let (jid, password) = blocking(move || lock(&server).account(&name)).await?;
        let jid: BareJid = jid.parse().map_err(HarnessError::new)?;
        self.participants.push(Participant {
            jid,
            password,
            devices: 0,
        });
        Ok(self.participants.len() - 1)
    }

    async fn new_device(&mut self, p: usize) -> Result<usize, HarnessError> {
        let server = self.server().await?;
        let addr = lock(&server).c2s_addr();
        let part = &mut self.participants[p];
        part.devices += 1;
        let config = Config::new(part.jid.clone(), part.password.clone())
            .danger_plaintext_loopback_only(addr)
            .with_resource(format!("device{}", part.devices))
            .with_connect_timeout(CONNECT_TIMEOUT);
        let client = Client::connect(config)
            .await
            .map_err(|e| HarnessError(format!("connecting member {p}: {e}")))?;
        self.devices.push(Device {
            client,
            participant: p,
        });
        Ok(self.devices.len() - 1)
    }

    async fn enter(&self, room: &BareJid, device: usize) -> Result<GroupChat, HarnessError> {
        let d = self
            .devices
            .get(device)
            .ok_or_else(|| HarnessError(format!("no device {device}")))?;
        d.client
            .group(room.clone())
            .await
            .map_err(|e| HarnessError(format!("entering {room}: {e}")))
    }

    async fn new_room(&mut self, members: Vec<usize>) -> Result<XmppChat, HarnessError> {
        let server = self.server().await?;
        let muc = lock(&server).muc_domain().to_owned();
        let room: BareJid = format!("chat{}@{muc}", self.chats.len())
            .parse()
            .map_err(HarnessError::new)?;
        let mut groups = Vec::with_capacity(members.len());
        for &d in &members {
            groups.push(self.enter(&room, d).await?);
        }
        self.chats.push(ChatState {
            room,
            members,
            groups,
        });
        Ok(XmppChat(self.chats.len() - 1))
    }

    fn chat(&self, chat: &XmppChat) -> Result<&ChatState, HarnessError> {
        self.chats
            .get(chat.0)
            .ok_or_else(|| HarnessError(format!("unknown chat {}", chat.0)))
    }
}

impl Drop for XmppHarness {
    fn drop(&mut self) {
        // Clients first (see the field order), then the server. Stopping a
        // server blocks until the process exited: inside a runtime, do it
        // on a blocking thread so the async workers keep running.
        self.chats.clear();
        self.devices.clear();
        if let Some(server) = self.server.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(move || drop(server));
                }
                Err(_) => drop(server),
            }
        }
    }
}

impl Harness for XmppHarness {
    type Chat = XmppChat;
    type Channel = XmppChannel;

    fn name(&self) -> String {
        format!("xmpp-{}", self.kind).to_lowercase()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn new_chat(&mut self, members: usize) -> Result<XmppChat, HarnessError> {
        let mut devices = Vec::with_capacity(members);
        for _ in 0..members {
            let p = self.new_participant().await?;
            devices.push(self.new_device(p).await?);
        }
        self.new_room(devices).await
    }

    async fn other_chat(&mut self, chat: &XmppChat) -> Result<XmppChat, HarnessError> {
        let members = self.chat(chat)?.members.clone();
        self.new_room(members).await
    }

    async fn join(
        &mut self,
        chat: &XmppChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<XmppChannel, JoinFailure>, HarnessError> {
        let group = self
            .chat(chat)?
            .groups
            .get(member)
            .ok_or_else(|| HarnessError(format!("no member {member} in chat {}", chat.0)))?;
        Ok(match group.join_realtime_channel(instance) {
            Ok(inner) => Ok(XmppChannel { inner }),
            Err(e) => Err(crate::join_failure(e)),
        })
    }

    async fn add_device(
        &mut self,
        chat: &XmppChat,
        member: Member,
    ) -> Result<Member, HarnessError> {
        let state = self.chat(chat)?;
        let device = crate::device_of(&state.members, member, chat.0)?;
        let room = state.room.clone();
        let p = self.devices[device].participant;
        let d = self.new_device(p).await?;
        let group = self.enter(&room, d).await?;
        let state = &mut self.chats[chat.0];
        state.members.push(d);
        state.groups.push(group);
        Ok(state.members.len() - 1)
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        let server = self.server().await?;
        blocking(move || lock(&server).restart()).await
    }
}

/// A channel of the XMPP backend: the library's [`webxdc_realtime_xmpp::Channel`].
pub struct XmppChannel {
    inner: webxdc_realtime_xmpp::Channel,
}

impl Channel for XmppChannel {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        self.inner.send(data).await.map_err(crate::send_failure)
    }

    async fn recv(&mut self, timeout: Duration) -> Received {
        crate::recv_delivery(&mut self.inner, timeout).await
    }

    async fn leave(&mut self) {
        self.inner.leave();
    }
}
