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
//!
//! [`XmppHarness::with_options`] starts the server with other
//! [`Options`] (a rate limit, a MUC archive, TLS off or on); the
//! benchmarks use that, [`XmppHarness::on_client`] to watch what every
//! client reports, [`XmppHarness::with_server`] to change the server's
//! configuration before a run, and [`XmppHarness::connect`] for clients
//! outside any chat.
//!
//! # Networks of servers
//!
//! The same harness runs on more than one server ([`Topology`]): members
//! are seated round-robin over the servers (member 0 on the first, member
//! 1 on the second, …), the rooms live on the first, and a restart
//! restarts the second, so the clients that reconnect are the ones whose
//! server is not the room's (or not the node the room was made on).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client, Config, GroupChat};
use xmpp_test_server::{
    EjabberdCluster, FederatedPair, FederationOptions, Options, ServerKind, TestServer,
};

use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};

/// How long a client may take to connect, unless set otherwise (a hang
/// guard, generous for a loaded machine).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`XmppHarness::shutdown`] waits for each client's clean close.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

type Server = Arc<Mutex<Network>>;

/// Which servers a harness runs on.
#[derive(Clone, Debug)]
pub enum Topology {
    /// One server started with these options (`xmpp-prosody`,
    /// `xmpp-ejabberd`).
    Single(Options),
    /// A federated pair (`xmpp-federated`): Prosody hosts the rooms,
    /// ejabberd on another domain holds every second member, and the two
    /// talk server to server.
    Federated(FederationOptions),
    /// An ejabberd cluster of this many nodes (`xmpp-ejabberd-cluster`),
    /// started with these options: every second member (and every second
    /// device of a member) is connected to another node.
    Cluster(usize, Options),
}

impl Topology {
    /// The harness name of this topology.
    fn name(&self) -> String {
        match self {
            Topology::Single(o) => format!("xmpp-{}", o.kind).to_lowercase(),
            Topology::Federated(_) => "xmpp-federated".into(),
            Topology::Cluster(..) => "xmpp-ejabberd-cluster".into(),
        }
    }

    /// Starts the servers (blocking).
    fn start(&self) -> io::Result<Network> {
        match self {
            Topology::Single(o) => {
                TestServer::start(o.clone()).map(|s| Network::Single(Box::new(s)))
            }
            Topology::Federated(o) => {
                FederatedPair::start(o.clone()).map(|p| Network::Federated(Box::new(p)))
            }
            Topology::Cluster(n, o) => EjabberdCluster::start(*n, o.clone()).map(Network::Cluster),
        }
    }
}

/// The running servers of a [`Topology`].
pub enum Network {
    /// One server (boxed, like the pair: the enum stays small).
    Single(Box<TestServer>),
    /// Two federated servers.
    Federated(Box<FederatedPair>),
    /// The nodes of one cluster.
    Cluster(EjabberdCluster),
}

impl Network {
    /// The server the rooms live on (the one [`XmppHarness::with_server`]
    /// hands out).
    pub fn primary(&mut self) -> &mut TestServer {
        match self {
            Network::Single(s) => s,
            Network::Federated(p) => p.server_mut(0),
            Network::Cluster(c) => c.node_mut(0),
        }
    }

    /// A new account for member seat `seat`: its JID and password.
    fn account(&mut self, seat: usize, name: &str) -> io::Result<(String, String)> {
        match self {
            Network::Single(s) => {
                let _ = seat;
                s.account(name)
            }
            Network::Federated(p) => p.server_mut(seat % 2).account(name),
            // The cluster shares its accounts: any node registers it.
            Network::Cluster(c) => c.account(name),
        }
    }

    /// The address device `device` of the participant in seat `seat`
    /// connects to.
    fn c2s_addr(&self, seat: usize, device: usize) -> std::net::SocketAddr {
        match self {
            Network::Single(s) => {
                let _ = (seat, device);
                s.c2s_addr()
            }
            // An account lives on its own server: all its devices go there.
            Network::Federated(p) => p.server(seat % 2).c2s_addr(),
            // Any node serves any account: a second device of a member goes
            // to another node than its first, so other-device delivery
            // crosses the cluster too.
            Network::Cluster(c) => c.node((seat + device) % c.len()).c2s_addr(),
        }
    }

    /// The MUC service the harness makes its rooms on.
    fn muc_domain(&self) -> String {
        match self {
            Network::Single(s) => s.muc_domain().to_owned(),
            Network::Federated(p) => p.server(0).muc_domain().to_owned(),
            Network::Cluster(c) => c.muc_domain().to_owned(),
        }
    }

    /// The suite's restart: the single server, or the one that does not
    /// host the rooms.
    fn restart(&mut self) -> io::Result<()> {
        match self {
            Network::Single(s) => s.restart(),
            Network::Federated(p) => p.restart(1),
            Network::Cluster(c) => c.node_mut(1).restart(),
        }
    }
}

/// Called with every client the harness connects.
type ClientHook = Arc<dyn Fn(&Client) + Send + Sync>;

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
    /// Which server seat the account lives on (see [`Topology`]).
    seat: usize,
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
    topology: Topology,
    connect_timeout: Duration,
    on_client: Option<ClientHook>,
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

    /// A harness on a federated pair: rooms on Prosody, every second
    /// member on ejabberd (`xmpp-federated`).
    pub fn federated() -> Self {
        Self::on_topology(Topology::Federated(FederationOptions::default()))
    }

    /// A harness on a two-node ejabberd cluster (`xmpp-ejabberd-cluster`).
    pub fn ejabberd_cluster() -> Self {
        Self::on_topology(Topology::Cluster(2, Options::ejabberd()))
    }

    /// A harness on a throwaway server of `kind`.
    pub fn new(kind: ServerKind) -> Self {
        Self::with_options(Options::new(kind))
    }

    /// A harness on a throwaway server started with `options` (its kind
    /// names the harness: `xmpp-prosody`, `xmpp-ejabberd`).
    pub fn with_options(options: Options) -> Self {
        Self::on_topology(Topology::Single(options))
    }

    /// A harness on the servers of `topology`.
    pub fn on_topology(topology: Topology) -> Self {
        XmppHarness {
            chats: Vec::new(),
            devices: Vec::new(),
            participants: Vec::new(),
            topology,
            connect_timeout: CONNECT_TIMEOUT,
            on_client: None,
            server: None,
        }
    }

    /// How long each client may take to connect (default
    /// [`CONNECT_TIMEOUT`]).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Calls `hook` with every client the harness connects, right after
    /// it connected (for example to subscribe to `Client::events()`).
    pub fn on_client(mut self, hook: impl Fn(&Client) + Send + Sync + 'static) -> Self {
        self.on_client = Some(Arc::new(hook));
        self
    }

    /// The server, started on first use.
    async fn server(&mut self) -> Result<Server, HarnessError> {
        if let Some(s) = &self.server {
            return Ok(s.clone());
        }
        let topology = self.topology.clone();
        let name = topology.name();
        let server = blocking(move || topology.start())
            .await
            .map_err(|e| HarnessError(format!("starting {name}: {e}")))?;
        let server = Arc::new(Mutex::new(server));
        self.server = Some(server.clone());
        Ok(server)
    }

    /// Runs `f` on the server (started first if need be) on a blocking
    /// thread: the server's methods block. For example
    /// `h.with_server(|s| Ok(s.pid()))`, or a configuration change
    /// followed by [`TestServer::restart`] before a run. On a network of
    /// servers, this is the one the rooms live on.
    pub async fn with_server<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut TestServer) -> io::Result<T> + Send + 'static,
    ) -> Result<T, HarnessError> {
        self.with_network(|n| f(n.primary())).await
    }

    /// Runs `f` on every server of the harness (started first if need be)
    /// on a blocking thread.
    pub async fn with_network<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Network) -> io::Result<T> + Send + 'static,
    ) -> Result<T, HarnessError> {
        let server = self.server().await?;
        blocking(move || f(&mut server.lock())).await
    }

    /// A client on a new account `name`, outside any chat of the harness
    /// (the caller owns it; the harness does not close it).
    pub async fn connect(&mut self, name: &str) -> Result<Client, HarnessError> {
        let name = name.to_owned();
        let (jid, password) = self.with_network(move |n| n.account(0, &name)).await?;
        let jid: BareJid = jid.parse().map_err(HarnessError::new)?;
        self.login(jid, password, None, (0, 0)).await
    }

    /// Closes every client of the harness (each bounded by a few seconds:
    /// a throttled server may hold megabytes of their data), then stops
    /// the server off the async workers.
    pub async fn shutdown(mut self) {
        self.chats.clear();
        for d in self.devices.drain(..) {
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, d.client.shutdown()).await;
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::task::spawn_blocking(move || drop(s)).await;
        }
    }

    /// Connects a client and hands it to the [`on_client`](Self::on_client)
    /// hook.
    async fn login(
        &mut self,
        jid: BareJid,
        password: String,
        resource: Option<String>,
        (seat, device): (usize, usize),
    ) -> Result<Client, HarnessError> {
        let addr = self.server().await?.lock().c2s_addr(seat, device);
        let mut config = Config::new(jid.clone(), password)
            .danger_plaintext_loopback_only(addr)
            .with_connect_timeout(self.connect_timeout);
        if let Some(r) = resource {
            config = config.with_resource(r);
        }
        let client = Client::connect(config)
            .await
            .map_err(|e| HarnessError(format!("connecting {jid}: {e}")))?;
        if let Some(hook) = &self.on_client {
            hook(&client);
        }
        Ok(client)
    }

    async fn new_participant(&mut self) -> Result<usize, HarnessError> {
        let seat = self.participants.len();
        let name = format!("member{seat}");
        let (jid, password) = self.with_network(move |n| n.account(seat, &name)).await?;
        let jid: BareJid = jid.parse().map_err(HarnessError::new)?;
        self.participants.push(Participant {
            jid,
            password,
            devices: 0,
            seat,
        });
        Ok(self.participants.len() - 1)
    }

    async fn new_device(&mut self, p: usize) -> Result<usize, HarnessError> {
        let part = &mut self.participants[p];
        part.devices += 1;
        let (jid, password) = (part.jid.clone(), part.password.clone());
        let resource = format!("device{}", part.devices);
        let seat = (part.seat, part.devices - 1);
        let client = self
            .login(jid, password, Some(resource), seat)
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
        let muc = self.server().await?.lock().muc_domain();
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
        self.topology.name()
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
        self.with_network(|n| n.restart()).await
    }
}

/// A channel of the XMPP backend: the library's [`webxdc_realtime_xmpp::Channel`].
pub struct XmppChannel {
    inner: webxdc_realtime_xmpp::Channel,
}

impl From<webxdc_realtime_xmpp::Channel> for XmppChannel {
    /// The suite's view of a library channel, for harnesses of other
    /// servers (the benchmark's XMPP floor) that make channels themselves.
    fn from(inner: webxdc_realtime_xmpp::Channel) -> Self {
        XmppChannel { inner }
    }
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
