//! One simulated Delta Chat device: an Iroh endpoint, its gossip, its
//! "database" of advertised peers and its event bus.
//!
//! The structure follows Delta Chat core's `peer_channels` (iroh 0.35,
//! iroh-gossip 0.35): one ephemeral secret key per device, one gossip
//! subscription per app instance (keyed by the instance's topic), peers learnt
//! from advertisements and from gossip neighbours. Where the faithful mirror
//! ([`Variant::DeltaChat`]) and the fixed variant ([`Variant::Fixed`]) differ,
//! the code says so at the branch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt;
use iroh::{Endpoint, NodeAddr, NodeId, PublicKey, RelayMap, RelayMode, RelayUrl, SecretKey};
use iroh_gossip::net::{Event, Gossip, GossipEvent, GossipSender, JoinOptions, GOSSIP_ALPN};
use iroh_gossip::proto::TopicId;
use parking_lot::Mutex as SyncMutex;
use spec_tests::cases::MAX_PAYLOAD;
use tokio::sync::{broadcast, oneshot, OnceCell, RwLock};
use tokio::task::JoinHandle;

use crate::reorder::{Out, Reorder};
use crate::Variant;

/// Length of the ed25519 public key Delta Chat appends to every payload.
pub(crate) const PUBLIC_KEY_LENGTH: usize = 32;
/// Length of the sequence number Delta Chat appends before the key.
pub(crate) const SEQ_LENGTH: usize = 4;
/// Delta Chat's gossip `max_message_size`: 128 KiB, so that 128000 bytes of
/// payload plus the 36-byte suffix plus gossip framing fit.
const GOSSIP_MAX_MESSAGE_SIZE: usize = 128 * 1024;
/// Delta Chat's event channel holds 10 000 events and drops the oldest on
/// overflow (reporting `EventChannelOverflow { n }` to the UI).
const DELTACHAT_EVENT_CAPACITY: usize = 10_000;
/// Per-channel queue of the fixed variant: bounded, overflow reported.
const FIXED_QUEUE_CAPACITY: usize = 4096;

/// Identifies an app instance the way Delta Chat's `MsgId` of the webxdc
/// message does: per chat, per instance name.
pub(crate) type InstanceKey = (u64, String);

/// What travels from the gossip loop to the app side.
#[derive(Clone, Debug)]
pub(crate) enum Delivery {
    /// `WebxdcRealtimeData { msg_id, data }`, suffix already stripped.
    Data(InstanceKey, Vec<u8>),
    /// The gossip subscription reported `Lagged` (fixed variant only: Delta
    /// Chat only logs it). iroh-gossip does not say how many were lost.
    GossipLagged,
    /// Fixed variant: a sequence gap that never filled.
    Lost(u64),
}

fn out_to_delivery(key: &InstanceKey, out: Out) -> Delivery {
    match out {
        Out::Data(d) => Delivery::Data(key.clone(), d),
        Out::Lost(n) => Delivery::Lost(n),
    }
}

/// Per-topic state while a subscription exists (Delta Chat's `ChannelState`).
struct ChannelState {
    subscribe_loop: JoinHandle<()>,
    sender: GossipSender,
}

/// The running Iroh part of a device (Delta Chat's `Iroh` struct).
struct Iroh {
    router: iroh::protocol::Router,
    gossip: Gossip,
    public_key: PublicKey,
    /// Per-topic sequence numbers. Like Delta Chat these are `i32`, start at
    /// 1, and survive leave/re-join.
    sequence_numbers: SyncMutex<HashMap<TopicId, i32>>,
    channels: RwLock<HashMap<TopicId, ChannelState>>,
}

/// Errors of the device layer; the harness maps them to contract outcomes.
#[derive(Debug)]
pub(crate) enum PeerError {
    /// Fixed variant: an unleft subscription for this topic exists.
    AlreadyJoined,
    /// Fixed variant: the payload is over 128000 bytes.
    TooLarge,
    /// Anything from Iroh or the simulation.
    Other(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::AlreadyJoined => f.write_str("already joined"),
            PeerError::TooLarge => f.write_str("payload over 128000 bytes"),
            PeerError::Other(e) => f.write_str(e),
        }
    }
}

/// Wraps any error from Iroh or serde as [`PeerError::Other`].
fn other(e: impl std::fmt::Display) -> PeerError {
    PeerError::Other(e.to_string())
}

/// One device (Delta Chat: one account's `Context` with its lazily started
/// `Iroh`). Devices are shared by all chats of their participant.
pub(crate) struct Peer {
    pub(crate) label: String,
    variant: Variant,
    relay_map: RelayMap,
    iroh: OnceCell<Iroh>,
    /// Delta Chat's `iroh_gossip_peers` table: per instance, the peers and
    /// the relay they advertised (`None` when learnt as a gossip neighbour).
    db: SyncMutex<HashMap<InstanceKey, BTreeMap<NodeId, Option<RelayUrl>>>>,
    /// Topics per instance, as received in the webxdc message.
    topics: SyncMutex<HashMap<InstanceKey, TopicId>>,
    /// Mirror: the account-wide event channel that every UI listener reads.
    events: broadcast::Sender<Delivery>,
    /// Fixed: one queue per joined topic, owned by that channel.
    queues: SyncMutex<HashMap<TopicId, broadcast::Sender<Delivery>>>,
}

impl Peer {
    pub(crate) fn new(label: String, variant: Variant, relay_map: RelayMap) -> Arc<Self> {
        let (events, _) = broadcast::channel(DELTACHAT_EVENT_CAPACITY);
        Arc::new(Peer {
            label,
            variant,
            relay_map,
            iroh: OnceCell::new(),
            db: SyncMutex::new(HashMap::new()),
            topics: SyncMutex::new(HashMap::new()),
            events,
            queues: SyncMutex::new(HashMap::new()),
        })
    }

    /// Stores the topic carried by the webxdc message (Delta Chat's
    /// `insert_topic_stub`).
    pub(crate) fn receive_webxdc(&self, key: &InstanceKey, topic: TopicId) {
        self.topics.lock().entry(key.clone()).or_insert(topic);
    }

    fn topic(&self, key: &InstanceKey) -> Result<TopicId, PeerError> {
        self.topics
            .lock()
            .get(key)
            .copied()
            .ok_or_else(|| PeerError::Other(format!("instance {key:?} has no gossip topic")))
    }

    /// Lazily starts the endpoint, gossip and router, like
    /// `get_or_try_init_peer_channel`.
    async fn iroh(&self) -> Result<&Iroh, PeerError> {
        self.iroh
            .get_or_try_init(|| async {
                // A fresh key per device and start: Delta Chat's identities
                // are ephemeral too.
                let secret_key = SecretKey::generate(rand::rngs::OsRng);
                let public_key = secret_key.public();
                let endpoint = Endpoint::builder()
                    // Delta Chat keeps X.509 TLS for peers older than 0.34.
                    .tls_x509()
                    .secret_key(secret_key)
                    .alpns(vec![GOSSIP_ALPN.to_vec()])
                    // Delta Chat uses the chatmail server's relay; here that
                    // is the in-process test relay on 127.0.0.1. No
                    // discovery service is added (the builder has none by
                    // default), so nothing resolves node ids over DNS.
                    .relay_mode(RelayMode::Custom(self.relay_map.clone()))
                    // The test relay's certificate is self-signed.
                    .insecure_skip_relay_cert_verify(true)
                    // Bind loopback only, so that even direct paths found by
                    // hole punching stay on 127.0.0.1.
                    .bind_addr_v4(std::net::SocketAddrV4::new(
                        std::net::Ipv4Addr::LOCALHOST,
                        0,
                    ))
                    .bind_addr_v6(std::net::SocketAddrV6::new(
                        std::net::Ipv6Addr::LOCALHOST,
                        0,
                        0,
                        0,
                    ))
                    .bind()
                    .await
                    .map_err(other)?;
                let gossip = Gossip::builder()
                    .max_message_size(GOSSIP_MAX_MESSAGE_SIZE)
                    .spawn(endpoint.clone())
                    .await
                    .map_err(other)?;
                let router = iroh::protocol::Router::builder(endpoint)
                    .accept(GOSSIP_ALPN, gossip.clone())
                    .spawn();
                Ok::<_, PeerError>(Iroh {
                    router,
                    gossip,
                    public_key,
                    sequence_numbers: SyncMutex::new(HashMap::new()),
                    channels: RwLock::new(HashMap::new()),
                })
            })
            .await
    }

    /// The advertised address: node id and home relay, never IP addresses
    /// (Delta Chat's `get_node_addr`: mail providers could keep them).
    pub(crate) async fn advertised_addr(&self) -> Result<NodeAddr, PeerError> {
        let iroh = self.iroh().await?;
        let endpoint = iroh.router.endpoint();
        if self.variant == Variant::Fixed {
            // Fixed: wait for the home relay, so the advertisement never
            // lacks the only way to reach us. Delta Chat only has a
            // debug_assert for this.
            tokio::time::timeout(Duration::from_secs(10), endpoint.home_relay().initialized())
                .await
                .map_err(|_| PeerError::Other("no home relay after 10 s".into()))?
                .map_err(other)?;
        }
        let mut addr = endpoint.node_addr().await.map_err(other)?;
        addr.direct_addresses.clear();
        Ok(addr)
    }

    /// `join_and_subscribe_gossip`. Returns `None` when a subscription for
    /// the topic already exists (mirror), otherwise a receiver that fires
    /// when the swarm has at least one neighbour.
    pub(crate) async fn join(
        self: &Arc<Self>,
        key: &InstanceKey,
    ) -> Result<Option<oneshot::Receiver<()>>, PeerError> {
        let topic = self.topic(key)?;
        let iroh = self.iroh().await?;
        // Held across the check and the insert so that two joins cannot both
        // subscribe (each subscription would deliver every payload again).
        let mut channels = iroh.channels.write().await;
        if channels.contains_key(&topic) {
            return match self.variant {
                // Delta Chat: a second join silently reuses the subscription.
                Variant::DeltaChat => Ok(None),
                Variant::Fixed => Err(PeerError::AlreadyJoined),
            };
        }
        let peers: Vec<(NodeId, Option<RelayUrl>)> = self
            .db
            .lock()
            .get(key)
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        for (node_id, relay) in &peers {
            if let Some(relay) = relay {
                iroh.router
                    .endpoint()
                    .add_node_addr(NodeAddr::from_parts(*node_id, Some(relay.clone()), []))
                    .map_err(other)?;
            }
        }
        let own_id = iroh.public_key;
        let bootstrap = peers
            .iter()
            .map(|(id, _)| *id)
            // Fixed: of each pair only the lower id dials (see
            // `receive_advertisement`), so the pair never ends up with two
            // racing connections.
            .filter(|id| self.variant == Variant::DeltaChat || own_id < *id);
        let (join_tx, join_rx) = oneshot::channel();
        let (sender, receiver) = iroh
            .gossip
            .subscribe_with_opts(topic, JoinOptions::with_bootstrap(bootstrap))
            .split();
        let sink = match self.variant {
            Variant::DeltaChat => self.events.clone(),
            Variant::Fixed => {
                let (tx, _) = broadcast::channel(FIXED_QUEUE_CAPACITY);
                self.queues.lock().insert(topic, tx.clone());
                tx
            }
        };
        let peer = Arc::clone(self);
        let key2 = key.clone();
        let subscribe_loop = tokio::spawn(async move {
            peer.subscribe_loop(receiver, key2, sink, join_tx).await;
        });
        channels.insert(
            topic,
            ChannelState {
                subscribe_loop,
                sender,
            },
        );
        Ok(Some(join_rx))
    }

    /// The mirror's account-wide event channel (what the UI reads).
    pub(crate) fn events(&self) -> broadcast::Receiver<Delivery> {
        self.events.subscribe()
    }

    /// The fixed variant's queue of the joined topic of `key`.
    pub(crate) fn queue(
        &self,
        key: &InstanceKey,
    ) -> Result<broadcast::Receiver<Delivery>, PeerError> {
        let topic = self.topic(key)?;
        self.queues
            .lock()
            .get(&topic)
            .map(|tx| tx.subscribe())
            .ok_or_else(|| PeerError::Other("not joined".into()))
    }

    /// `subscribe_loop`: turns gossip events into deliveries and records
    /// neighbours as peers of the instance.
    async fn subscribe_loop(
        &self,
        mut stream: iroh_gossip::net::GossipReceiver,
        key: InstanceKey,
        sink: broadcast::Sender<Delivery>,
        join_tx: oneshot::Sender<()>,
    ) {
        let mut join_tx = Some(join_tx);
        let mut reorder = Reorder::default();
        loop {
            // Fixed: wake up for the reorder buffer's gap deadline too.
            let event = match reorder.deadline() {
                Some(deadline) => tokio::select! {
                    e = stream.next() => e,
                    () = tokio::time::sleep_until(deadline) => {
                        for out in reorder.expire(tokio::time::Instant::now()) {
                            let _ = sink.send(out_to_delivery(&key, out));
                        }
                        continue;
                    }
                },
                None => stream.next().await,
            };
            let Some(event) = event else { break };
            let Ok(event) = event else {
                // Delta Chat ends the loop on a stream error too.
                break;
            };
            match event {
                Event::Gossip(GossipEvent::Joined(nodes)) => {
                    if let Some(tx) = join_tx.take() {
                        // Nobody may wait for it; that is fine.
                        let _ = tx.send(());
                    }
                    for node in nodes {
                        self.add_peer(&key, node, None);
                    }
                }
                Event::Gossip(GossipEvent::NeighborUp(node)) => self.add_peer(&key, node, None),
                Event::Gossip(GossipEvent::NeighborDown(_)) => {}
                Event::Gossip(GossipEvent::Received(message)) => {
                    let content = &message.content;
                    let Some(len) = content.len().checked_sub(SEQ_LENGTH + PUBLIC_KEY_LENGTH)
                    else {
                        match self.variant {
                            // Delta Chat returns an error from the loop on a
                            // message shorter than its suffix, which ends
                            // the subscription's delivery for good.
                            Variant::DeltaChat => break,
                            // Fixed: drop the malformed message, go on.
                            Variant::Fixed => continue,
                        }
                    };
                    let data = content[..len].to_vec();
                    match self.variant {
                        Variant::DeltaChat => {
                            // No receivers (nobody reading) is not an error.
                            let _ = sink.send(Delivery::Data(key.clone(), data));
                        }
                        Variant::Fixed => {
                            let (seq, from) = content[len..].split_at(SEQ_LENGTH);
                            let (Ok(seq), Ok(from)) =
                                (<[u8; 4]>::try_from(seq), <[u8; 32]>::try_from(from))
                            else {
                                continue;
                            };
                            let now = tokio::time::Instant::now();
                            for out in reorder.push(from, i32::from_le_bytes(seq), data, now) {
                                let _ = sink.send(out_to_delivery(&key, out));
                            }
                        }
                    }
                }
                Event::Lagged => {
                    // Delta Chat only logs this; the fixed variant tells
                    // the app that data was lost.
                    if self.variant == Variant::Fixed {
                        let _ = sink.send(Delivery::GossipLagged);
                    }
                }
            }
        }
    }

    /// `iroh_add_peer_for_topic`: `INSERT OR REPLACE`, so in Delta Chat a
    /// neighbour event overwrites an advertised relay URL with NULL.
    fn add_peer(&self, key: &InstanceKey, node: NodeId, relay: Option<RelayUrl>) {
        let mut db = self.db.lock();
        let entry = db.entry(key.clone()).or_default();
        match (self.variant, relay) {
            (Variant::Fixed, None) => {
                // Fixed: keep a known relay URL.
                entry.entry(node).or_insert(None);
            }
            (_, relay) => {
                entry.insert(node, relay);
            }
        }
    }

    /// `add_gossip_peer_from_header`: handles an advertisement that arrived
    /// through the chat.
    pub(crate) async fn receive_advertisement(
        &self,
        key: &InstanceKey,
        header: &str,
    ) -> Result<(), PeerError> {
        let addr: NodeAddr = serde_json::from_str(header).map_err(other)?;
        if self.topics.lock().get(key).is_none() {
            // Delta Chat warns and ignores it.
            return Ok(());
        }
        self.add_peer(key, addr.node_id, addr.relay_url().cloned());
        // `maybe_add_gossip_peer`: only if Iroh runs and the topic is joined.
        if let Some(iroh) = self.iroh.get() {
            let topic = self.topic(key)?;
            if iroh.channels.read().await.contains_key(&topic) {
                let node_id = addr.node_id;
                iroh.router.endpoint().add_node_addr(addr).map_err(other)?;
                // Delta Chat dials every advertiser, and the advertiser
                // dials everyone it knows on joining: both ends of a pair
                // connect at once. iroh-gossip 0.35 then moves sending to
                // the newer connection while the older one still carries
                // messages (reordering), and when the two ends pick
                // different "newer" connections one side can see its
                // active connection closed and drop the neighbour (a
                // stall). Fixed: only the lower node id dials.
                if self.variant == Variant::Fixed && iroh.public_key > node_id {
                    return Ok(());
                }
                // Delta Chat subscribes again with the new bootstrap peer
                // and drops the handle: the existing subscription keeps the
                // topic joined, the extra join request adds the peer.
                let _ = iroh.gossip.subscribe(topic, vec![node_id]).map_err(other)?;
            }
        }
        Ok(())
    }

    /// `send_webxdc_realtime_data`.
    pub(crate) async fn send(
        self: &Arc<Self>,
        key: &InstanceKey,
        data: &[u8],
    ) -> Result<(), PeerError> {
        if self.variant == Variant::Fixed && data.len() > MAX_PAYLOAD {
            // Fixed: refuse before anything reaches gossip. Delta Chat has
            // no check; iroh-gossip's broadcast then returns Ok and the
            // oversize frame kills this sender's streams.
            return Err(PeerError::TooLarge);
        }
        let topic = self.topic(key)?;
        if self.variant == Variant::DeltaChat {
            // Delta Chat (re-)joins implicitly on every send, which is why
            // a send after leave succeeds there.
            self.join(key).await?;
        }
        let iroh = self.iroh().await?;
        let seq = {
            let mut seqs = iroh.sequence_numbers.lock();
            let entry = seqs.entry(topic).or_default();
            *entry = entry.wrapping_add(1);
            *entry
        };
        let channels = iroh.channels.read().await;
        let state = channels
            .get(&topic)
            .ok_or_else(|| PeerError::Other("not joined".into()))?;
        // data || seq (i32 LE) || public key: makes every message unique, as
        // iroh-gossip drops content it has seen in the last 90 s.
        let mut frame = Vec::with_capacity(data.len() + SEQ_LENGTH + PUBLIC_KEY_LENGTH);
        frame.extend_from_slice(data);
        frame.extend_from_slice(&seq.to_le_bytes());
        frame.extend_from_slice(iroh.public_key.as_bytes());
        state
            .sender
            .broadcast(Bytes::from(frame))
            .await
            .map_err(other)?;
        Ok(())
    }

    /// `leave_realtime`: drops the subscription, which quits the topic.
    pub(crate) async fn leave(&self, key: &InstanceKey) -> Result<(), PeerError> {
        let Some(iroh) = self.iroh.get() else {
            return Ok(());
        };
        let topic = self.topic(key)?;
        let removed = iroh.channels.write().await.remove(&topic);
        if let Some(state) = removed {
            state.subscribe_loop.abort();
            // Waiting makes sure the receiver half is dropped before we
            // return, so the topic is really quit.
            let _ = state.subscribe_loop.await;
            drop(state.sender);
        }
        self.queues.lock().remove(&topic);
        Ok(())
    }

    /// Shuts the endpoint down (end of a case).
    pub(crate) async fn shutdown(&self) {
        if let Some(iroh) = self.iroh.get() {
            let _ = iroh.router.shutdown().await;
        }
    }
}
