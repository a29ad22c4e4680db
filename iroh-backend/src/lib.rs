//! A conformance-suite backend that mirrors Delta Chat's realtime channels
//! over Iroh gossip (chatmail/core `src/peer_channels.rs`, iroh 0.35 and
//! iroh-gossip 0.35), so the suite can measure Delta Chat's design with the
//! same cases as the XMPP backend.
//!
//! # How the simulation maps Delta Chat
//!
//! | Delta Chat | here |
//! | --- | --- |
//! | an account on a device (`Context` + lazily started `Iroh`) | a device ([`peer`]): its own ephemeral secret key, endpoint, gossip and router |
//! | the chatmail server's iroh relay | one in-process relay (iroh's `test-utils` relay) on 127.0.0.1, shared by all devices |
//! | the random 32-byte topic inside the webxdc message | [`IrohChat`] makes one random topic per app instance and hands it to every member device |
//! | the hidden advertisement message (`Iroh-Node-Addr` header, JSON `NodeAddr` with node id and relay URL, no IP addresses) | an in-memory message from the joining device to every other device of the chat, processed like `add_gossip_peer_from_header` |
//! | `WebxdcRealtimeData` events on the account's event channel | a bounded broadcast bus per device (mirror) or a queue per channel (fixed) |
//!
//! Two variants: [`IrohHarness::deltachat`] keeps Delta Chat's behaviour
//! where it breaks a suite rule (no size check, a second join silently
//! succeeds, send after leave re-joins, ...); [`IrohHarness::fixed`] applies
//! the obvious fixes. The suite's expectation files list what each fails.
//!
//! # Network
//!
//! Nothing here contacts a public relay, DNS or discovery service: the relay
//! map holds only the local relay (its URL is an IP address, so no name is
//! ever resolved) and no discovery service is configured. iroh 0.35 still
//! probes the default gateway for port mapping, so endpoints only start in a
//! loopback-only network namespace; see [`netns`].
//!
//! # What "join" waits for
//!
//! When another device of the chat has the instance joined, [`Harness::join`]
//! waits (at most 15 s) for the swarm to have a neighbour, as Delta Chat's
//! own tests wait for the receiver `send_webxdc_realtime_advertisement`
//! returns. Without that, a payload sent right after join is lost on every
//! transport that needs a handshake, which says nothing about the contract.
//!
//! # Restart
//!
//! The capability is off: Delta Chat's Iroh path has no server whose restart
//! the peers would notice. The relay only introduces peers; after hole
//! punching (here: loopback) traffic flows directly, and each device's
//! endpoint is part of the app, not of the transport. Restarting a device's
//! endpoint would give it a new identity that nobody was told about, which
//! is a new peer, not a restarted transport.
#![deny(missing_docs)]

#[cfg(feature = "host")]
pub mod host;
pub mod netns;
mod peer;
mod reorder;

#[cfg(feature = "host")]
pub use host::{IrohHostChat, IrohTransport};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use iroh::RelayMap;
use iroh_gossip::proto::TopicId;
use parking_lot::Mutex as SyncMutex;
use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};
use tokio::sync::broadcast;

use peer::{Delivery, InstanceKey, Peer, PeerError};

/// How long a join waits for the swarm to become operational.
const JOIN_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Which behaviour the backend has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Delta Chat's behaviour, divergences from the suite included.
    DeltaChat,
    /// Delta Chat's design with the obvious fixes: size check before
    /// anything is sent, a second join errors, send after leave errors,
    /// per-channel queues with loss reported, advertisements that always
    /// carry the relay URL, per-sender order restored from Delta Chat's
    /// sequence numbers (gaps reported as lost).
    Fixed,
}

/// The local relay: Delta Chat's chatmail relay, in process.
struct Relay {
    map: RelayMap,
    // Kept alive: dropping the server stops it. Type-erased because iroh
    // does not re-export the relay crate that names it.
    _server: Box<dyn std::any::Any + Send>,
}

/// The harness: a set of devices, chats between them and one relay.
pub struct IrohHarness {
    variant: Variant,
    relay: Option<Relay>,
    devices: Vec<Arc<Peer>>,
    next_chat: u64,
}

/// A simulated chat: its member devices and the topics of its app
/// instances.
pub struct IrohChat {
    state: Arc<ChatState>,
}

struct ChatState {
    id: u64,
    /// Member number → device. `other_chat` copies this list, so numbers
    /// mean the same participants (and devices) in both chats.
    members: SyncMutex<Vec<Arc<Peer>>>,
    /// Instance name → topic, made by whoever first opens the instance
    /// (Delta Chat: the device that sends the webxdc message).
    topics: SyncMutex<HashMap<String, TopicId>>,
    /// Instance name → labels of devices with an unleft channel. Only the
    /// harness uses this, to know whether a join has anyone to wait for.
    joined: SyncMutex<HashMap<String, HashSet<String>>>,
}

impl ChatState {
    fn members(&self) -> Vec<Arc<Peer>> {
        self.members.lock().clone()
    }

    fn key(&self, instance: &str) -> InstanceKey {
        (self.id, instance.to_owned())
    }

    /// The instance's topic; the first call creates it and "sends the
    /// webxdc message" (the topic) to every member device.
    fn topic(&self, instance: &str) -> TopicId {
        let topic = *self
            .topics
            .lock()
            .entry(instance.to_owned())
            .or_insert_with(|| TopicId::from_bytes(rand::random()));
        for device in self.members() {
            device.receive_webxdc(&self.key(instance), topic);
        }
        topic
    }
}

impl IrohHarness {
    /// The faithful mirror of Delta Chat (backend name `iroh-deltachat`).
    pub fn deltachat() -> Self {
        Self::new(Variant::DeltaChat)
    }

    /// Delta Chat's design with the obvious fixes (backend name
    /// `iroh-fixed`).
    pub fn fixed() -> Self {
        Self::new(Variant::Fixed)
    }

    /// A harness of the given variant. Nothing starts until the first chat.
    pub fn new(variant: Variant) -> Self {
        IrohHarness {
            variant,
            relay: None,
            devices: Vec::new(),
            next_chat: 0,
        }
    }

    async fn relay_map(&mut self) -> Result<RelayMap, HarnessError> {
        if let Some(relay) = &self.relay {
            return Ok(relay.map.clone());
        }
        if !netns::loopback_only() {
            return Err(HarnessError::new(
                "refusing to start Iroh outside a loopback-only network namespace: iroh 0.35 \
                 probes the default gateway for port mapping (call iroh_backend::netns::isolate() \
                 first, which needs root or user namespaces)",
            ));
        }
        let (map, _url, server) = iroh::test_utils::run_relay_server()
            .await
            .map_err(HarnessError::new)?;
        self.relay = Some(Relay {
            map: map.clone(),
            _server: Box::new(server),
        });
        Ok(map)
    }

    async fn new_device(&mut self) -> Result<Arc<Peer>, HarnessError> {
        let map = self.relay_map().await?;
        let label = format!("device{}", self.devices.len());
        let device = Peer::new(label, self.variant, map);
        self.devices.push(Arc::clone(&device));
        Ok(device)
    }

    fn chat(&mut self, members: Vec<Arc<Peer>>) -> IrohChat {
        self.next_chat += 1;
        IrohChat {
            state: Arc::new(ChatState {
                id: self.next_chat,
                members: SyncMutex::new(members),
                topics: SyncMutex::new(HashMap::new()),
                joined: SyncMutex::new(HashMap::new()),
            }),
        }
    }
}

impl Drop for IrohHarness {
    fn drop(&mut self) {
        // Endpoints run tasks on the runtime; close them so a long-running
        // runner does not accumulate endpoints of finished cases.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            for device in self.devices.drain(..) {
                handle.spawn(async move { device.shutdown().await });
            }
        }
    }
}

impl Harness for IrohHarness {
    type Chat = IrohChat;
    type Channel = IrohChannel;

    fn name(&self) -> String {
        match self.variant {
            Variant::DeltaChat => "iroh-deltachat".into(),
            Variant::Fixed => "iroh-fixed".into(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::NONE;
        // A second device is just another endpoint of the same account in
        // the same chat, as in Delta Chat.
        caps.multi_device = true;
        caps
    }

    async fn new_chat(&mut self, members: usize) -> Result<IrohChat, HarnessError> {
        let mut devices = Vec::with_capacity(members);
        for _ in 0..members {
            devices.push(self.new_device().await?);
        }
        Ok(self.chat(devices))
    }

    async fn other_chat(&mut self, chat: &IrohChat) -> Result<IrohChat, HarnessError> {
        let members = chat.state.members();
        Ok(self.chat(members))
    }

    async fn join(
        &mut self,
        chat: &IrohChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<IrohChannel, JoinFailure>, HarnessError> {
        let chat = Arc::clone(&chat.state);
        let device = chat
            .members()
            .get(member)
            .cloned()
            .ok_or_else(|| HarnessError(format!("no member {member}")))?;
        let key = chat.key(instance);
        chat.topic(instance);
        // The mirror's listener reads the account-wide event channel; take
        // the receiver before joining so nothing that arrives is missed.
        let events = (self.variant == Variant::DeltaChat).then(|| device.events());
        let ready = match device.join(&key).await {
            Ok(ready) => ready,
            Err(PeerError::AlreadyJoined) => return Ok(Err(JoinFailure::AlreadyJoined)),
            Err(e) => return Ok(Err(JoinFailure::Other(e.to_string()))),
        };
        let rx = match events {
            Some(rx) => rx,
            None => match device.queue(&key) {
                Ok(rx) => rx,
                Err(e) => return Ok(Err(JoinFailure::Other(e.to_string()))),
            },
        };
        let others_joined = {
            let mut joined = chat.joined.lock();
            let set = joined.entry(instance.to_owned()).or_default();
            let others = set.iter().any(|d| *d != device.label);
            set.insert(device.label.clone());
            others
        };
        // The advertisement: a hidden chat message that every other device
        // of the chat (own other devices included) processes. Like an email
        // it is rendered and delivered after join returns.
        {
            let chat = Arc::clone(&chat);
            let device = Arc::clone(&device);
            let key = key.clone();
            tokio::spawn(async move { advertise(chat, device, key).await });
        }
        if let (Some(ready), true) = (ready, others_joined) {
            // Timeout or a dropped sender: return the channel anyway; the
            // cases then show what is lost.
            let _ = tokio::time::timeout(JOIN_READY_TIMEOUT, ready).await;
        }
        Ok(Ok(IrohChannel {
            variant: self.variant,
            device,
            chat,
            key,
            rx,
            left: false,
        }))
    }

    async fn add_device(
        &mut self,
        chat: &IrohChat,
        member: Member,
    ) -> Result<Member, HarnessError> {
        if chat.state.members().get(member).is_none() {
            return Err(HarnessError(format!("no member {member}")));
        }
        let device = self.new_device().await?;
        // The new device gets the chat's webxdc messages (and topics) as
        // Delta Chat's other devices get them through the self-copy.
        let instances: Vec<(String, TopicId)> = chat
            .state
            .topics
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (instance, topic) in instances {
            device.receive_webxdc(&chat.state.key(&instance), topic);
        }
        let mut members = chat.state.members.lock();
        members.push(device);
        Ok(members.len() - 1)
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        Err(HarnessError::new(
            "restart is not supported by the Iroh backend (see the crate docs)",
        ))
    }
}

/// Renders the advertisement (node id + relay URL) and delivers it to every
/// other device of the chat.
async fn advertise(chat: Arc<ChatState>, from: Arc<Peer>, key: InstanceKey) {
    let header = match from.advertised_addr().await {
        Ok(addr) => match serde_json::to_string(&addr) {
            Ok(h) => h,
            Err(_) => return,
        },
        // Delta Chat would fail to render the message; it is never sent.
        Err(_) => return,
    };
    for device in chat.members() {
        if Arc::ptr_eq(&device, &from) {
            continue;
        }
        // Delta Chat logs a failed advertisement and goes on.
        let _ = device.receive_advertisement(&key, &header).await;
    }
}

/// A joined channel of one device.
pub struct IrohChannel {
    variant: Variant,
    device: Arc<Peer>,
    chat: Arc<ChatState>,
    key: InstanceKey,
    rx: broadcast::Receiver<Delivery>,
    left: bool,
}

impl Channel for IrohChannel {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        if self.left && self.variant == Variant::Fixed {
            return Err(SendFailure::Left);
        }
        match self.device.send(&self.key, data).await {
            Ok(()) => Ok(()),
            Err(PeerError::TooLarge) => Err(SendFailure::TooLarge),
            Err(e) => Err(SendFailure::Other(e.to_string())),
        }
    }

    async fn recv(&mut self, timeout: Duration) -> Received {
        if self.left {
            return Received::Closed;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Received::Timeout,
                Ok(Ok(Delivery::Data(key, data))) => {
                    // The mirror's bus carries every instance of the device.
                    if key == self.key {
                        return Received::Payload(data);
                    }
                }
                // iroh-gossip does not say how many; at least one.
                Ok(Ok(Delivery::GossipLagged)) => return Received::Lagged(1),
                Ok(Ok(Delivery::Lost(n))) => return Received::Lagged(n),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => return Received::Lagged(n),
                Ok(Err(broadcast::error::RecvError::Closed)) => return Received::Closed,
            }
        }
    }

    async fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        // Delta Chat logs a failed leave and goes on.
        let _ = self.device.leave(&self.key).await;
        if let Some(set) = self.chat.joined.lock().get_mut(&self.key.1) {
            set.remove(&self.device.label);
        }
    }
}
