//! The webxdc host's [`Transport`] over this backend: the same unchanged
//! app that the host serves over XMPP, with its realtime channel carried
//! by iroh-gossip as Delta Chat carries it.
//!
//! [`IrohHostChat::start`] makes one simulated chat (the backend's local
//! relay, one device per member, one random gossip topic per app instance
//! handed to every member, advertisements through the chat) and gives each
//! member an [`IrohTransport`] to pass to `webxdc_host::Origin::serve`.
//!
//! # Realtime
//!
//! Join, send and leave are the backend's device operations (Delta Chat's
//! `join_and_subscribe_gossip`, `send_webxdc_realtime_data`,
//! `leave_realtime`). The host's trait joins and leaves synchronously while
//! the device does both asynchronously, so each member has one task that
//! runs its device operations one after another in the order they were
//! asked for: a leave followed at once by a join (the page's "join again")
//! can never overtake it, and a send never runs before its join.
//!
//! A join does not wait for the swarm to have a neighbour, as Delta Chat's
//! `joinRealtimeChannel` does not: payloads sent before the peers found
//! each other are lost, as they are in Delta Chat. Apps that meet first
//! (the conformance app's barriers, the board's hello) are unaffected.
//!
//! # Status updates
//!
//! Updates are not carried over Iroh here; the chat's own messages would
//! carry them. Delta Chat sends status updates as messages of the chat
//! (email), never over Iroh, and this backend simulates no email. So the
//! members of one [`IrohHostChat`] share an in-process store, the host's
//! own [`MemoryChat`]: what the page sees of updates is the in-memory
//! reference transport, not Iroh.
//!
//! # Variants
//!
//! [`Variant::Fixed`] is the one to use: it keeps the contract (size
//! check, a second join is an error, per-sender order restored, loss
//! reported), so a page gets what it gets over XMPP. With
//! [`Variant::DeltaChat`] the faithful mirror differs here:
//!
//! * a second [`Transport::join`] of the same instance silently shares the
//!   first one's subscription (and the first leave ends both), where the
//!   fixed variant returns [`TransportError::AlreadyJoined`];
//! * a payload over 128000 bytes is handed to gossip, which breaks the
//!   sender's streams, where the fixed variant refuses it with
//!   [`TransportError::TooLarge`];
//! * delivery: no per-sender order (both ends of a pair dial, and gossip
//!   moves to the newer connection while the older one still carries
//!   messages), occasional stalls, and no loss reports.
//!
//! The host's `webxdc.js` and bridge check the first two before the
//! transport is asked, so a page sees the same errors over both variants;
//! only the delivery differs. Send after leave is refused by this channel
//! in both variants ([`TransportError::Left`]): the bridge drops a left
//! channel, so Delta Chat's re-join on send after leave cannot show here.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex as SyncMutex;
use spec_tests::harness::Harness;
use tokio::sync::{broadcast, mpsc, oneshot};
use webxdc_host::transport::memory::{MemoryChat, MemoryUser};
use webxdc_host::transport::{
    Realtime, RealtimeEvent, Transport, TransportError, Update, UpdateFeed,
};

use crate::peer::{Delivery, InstanceKey, Peer, PeerError};
use crate::{advertise, ChatState, IrohHarness, Variant};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What a channel says when its member's device task is gone.
const STOPPED: &str = "the Iroh device of this member has stopped";

/// One simulated chat whose members run the host over Iroh.
pub struct IrohHostChat {
    members: Vec<Arc<IrohTransport>>,
    chat: Arc<ChatState>,
}

impl std::fmt::Debug for IrohHostChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("IrohHostChat")
            .field("members", &names)
            .finish()
    }
}

/// What every member keeps alive: the local relay and the devices (the
/// harness shuts the endpoints down when the last member goes).
struct Shared {
    // The harness is Send but not Sync (it holds the type-erased relay
    // server); it is never used again, only kept.
    _harness: SyncMutex<IrohHarness>,
}

impl IrohHostChat {
    /// Starts a chat of one device per name (the names should differ:
    /// they are `selfName`). Needs a loopback-only network namespace
    /// ([`crate::netns::isolate`]) and a tokio runtime; nothing starts on
    /// the network until a member joins a channel, except the local relay.
    pub async fn start(variant: Variant, names: &[&str]) -> Result<Self, TransportError> {
        let mut harness = IrohHarness::new(variant);
        let chat = harness
            .new_chat(names.len())
            .await
            .map_err(|e| TransportError::Unavailable(e.to_string()))?;
        let shared = Arc::new(Shared {
            _harness: SyncMutex::new(harness),
        });
        let updates = MemoryChat::new();
        let members = chat
            .state
            .members()
            .into_iter()
            .zip(names)
            .map(|(device, name)| {
                let (ops, queue) = mpsc::unbounded_channel();
                tokio::spawn(device_ops(
                    variant,
                    Arc::clone(&device),
                    Arc::clone(&chat.state),
                    queue,
                ));
                Arc::new(IrohTransport {
                    name: (*name).to_owned(),
                    variant,
                    chat: Arc::clone(&chat.state),
                    ops,
                    joined: Arc::new(SyncMutex::new(HashSet::new())),
                    updates: updates.user(name),
                    _shared: Arc::clone(&shared),
                })
            })
            .collect();
        Ok(IrohHostChat {
            members,
            chat: chat.state,
        })
    }

    /// Ends every member's endpoint (gossip first): their channels stop
    /// working. Call it before the runtime ends: iroh-gossip 0.35's actor
    /// panics (in its task, harmlessly but loudly) when a runtime shutdown
    /// cancels its connection tasks before it.
    pub async fn shutdown(&self) {
        for device in self.chat.members() {
            device.shutdown().await;
        }
    }

    /// The member `name`'s transport.
    pub fn member(&self, name: &str) -> Option<Arc<IrohTransport>> {
        self.members.iter().find(|m| m.name == name).cloned()
    }
}

/// One member of an [`IrohHostChat`]: its device's realtime channels over
/// Iroh, and the chat's shared in-process update store.
pub struct IrohTransport {
    name: String,
    variant: Variant,
    chat: Arc<ChatState>,
    /// The device task's queue.
    ops: mpsc::UnboundedSender<Op>,
    /// Instances with an unleft channel (fixed variant: a second join is
    /// refused at once, as the trait's synchronous join must say so).
    joined: Arc<SyncMutex<HashSet<String>>>,
    updates: MemoryUser,
    _shared: Arc<Shared>,
}

impl std::fmt::Debug for IrohTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrohTransport")
            .field("name", &self.name)
            .field("variant", &self.variant)
            .finish_non_exhaustive()
    }
}

/// A device operation, run by the member's device task in order.
enum Op {
    Join {
        key: InstanceKey,
        reply: oneshot::Sender<Result<broadcast::Receiver<Delivery>, String>>,
    },
    Send {
        key: InstanceKey,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), TransportError>>,
    },
    Leave {
        key: InstanceKey,
    },
}

/// Runs one device's operations until the member and all its channels
/// are gone.
async fn device_ops(
    variant: Variant,
    device: Arc<Peer>,
    chat: Arc<ChatState>,
    mut ops: mpsc::UnboundedReceiver<Op>,
) {
    while let Some(op) = ops.recv().await {
        match op {
            Op::Join { key, reply } => {
                let result = join(variant, &device, &chat, &key).await;
                // A channel left before its join finished: the Leave behind
                // this Join undoes it.
                let _ = reply.send(result);
            }
            Op::Send { key, data, reply } => {
                let result = device.send(&key, &data).await.map_err(|e| match e {
                    PeerError::TooLarge => TransportError::TooLarge { size: data.len() },
                    e => TransportError::Unavailable(e.to_string()),
                });
                let _ = reply.send(result);
            }
            Op::Leave { key } => {
                // Delta Chat logs a failed leave and goes on.
                let _ = device.leave(&key).await;
            }
        }
    }
}

/// Subscribes the device to the instance's topic and sends the
/// advertisement through the chat, as the backend's harness join does.
async fn join(
    variant: Variant,
    device: &Arc<Peer>,
    chat: &Arc<ChatState>,
    key: &InstanceKey,
) -> Result<broadcast::Receiver<Delivery>, String> {
    // The mirror's deliveries go to the account-wide event bus: subscribe
    // before joining so nothing that arrives is missed.
    let events = (variant == Variant::DeltaChat).then(|| device.events());
    match device.join(key).await {
        // The "swarm has a neighbour" signal is not waited for (see the
        // module docs).
        Ok(_ready) => {}
        Err(PeerError::AlreadyJoined) => return Err(TransportError::AlreadyJoined.to_string()),
        Err(e) => return Err(e.to_string()),
    }
    let rx = match events {
        Some(rx) => rx,
        None => device.queue(key).map_err(|e| e.to_string())?,
    };
    // Like an email, the advertisement is delivered after join returns.
    tokio::spawn(advertise(Arc::clone(chat), Arc::clone(device), key.clone()));
    Ok(rx)
}

impl Transport for IrohTransport {
    /// The simulated account's address (`.invalid`: there is no mail
    /// account behind it).
    fn self_addr(&self) -> String {
        format!("{}@iroh.invalid", self.name)
    }

    fn self_name(&self) -> String {
        self.name.clone()
    }

    fn join(&self, instance: &str) -> Result<Box<dyn Realtime>, TransportError> {
        if self.variant == Variant::Fixed && !self.joined.lock().insert(instance.to_owned()) {
            return Err(TransportError::AlreadyJoined);
        }
        // "Receives the webxdc message": the instance's topic, made on
        // first use and handed to every member device.
        self.chat.topic(instance);
        let key = self.chat.key(instance);
        let (reply, joining) = oneshot::channel();
        if self
            .ops
            .send(Op::Join {
                key: key.clone(),
                reply,
            })
            .is_err()
        {
            self.joined.lock().remove(instance);
            return Err(TransportError::Unavailable(STOPPED.into()));
        }
        Ok(Box::new(IrohRealtime {
            instance: instance.to_owned(),
            key,
            ops: self.ops.clone(),
            joined: Arc::clone(&self.joined),
            joining: Some(joining),
            rx: None,
            left: false,
        }))
    }

    /// Into the chat's in-process store, not over Iroh (module docs).
    fn send_update<'a>(
        &'a self,
        instance: &'a str,
        update: &'a Update,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        self.updates.send_update(instance, update)
    }

    /// From the chat's in-process store, not over Iroh (module docs).
    fn updates<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<UpdateFeed, TransportError>> {
        self.updates.updates(instance)
    }
}

/// One joined channel of a member.
struct IrohRealtime {
    instance: String,
    key: InstanceKey,
    ops: mpsc::UnboundedSender<Op>,
    joined: Arc<SyncMutex<HashSet<String>>>,
    /// The join's outcome, until `recv` has taken it.
    joining: Option<oneshot::Receiver<Result<broadcast::Receiver<Delivery>, String>>>,
    rx: Option<broadcast::Receiver<Delivery>>,
    left: bool,
}

impl Realtime for IrohRealtime {
    fn send<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>> {
        let left = self.left;
        let key = self.key.clone();
        let ops = self.ops.clone();
        Box::pin(async move {
            if left {
                return Err(TransportError::Left);
            }
            let (reply, result) = oneshot::channel();
            let op = Op::Send {
                key,
                data: data.to_vec(),
                reply,
            };
            ops.send(op)
                .map_err(|_| TransportError::Unavailable(STOPPED.into()))?;
            result
                .await
                .unwrap_or_else(|_| Err(TransportError::Unavailable(STOPPED.into())))
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Option<RealtimeEvent>> {
        Box::pin(async move {
            if self.left {
                return None;
            }
            if let Some(joining) = &mut self.joining {
                // Awaiting `&mut` keeps the outcome if this future is
                // dropped (the bridge selects over it).
                let outcome = joining.await;
                self.joining = None;
                match outcome {
                    Ok(Ok(rx)) => self.rx = Some(rx),
                    Ok(Err(e)) => {
                        return Some(RealtimeEvent::Notice(format!(
                            "joining the realtime channel over Iroh failed: {e}"
                        )))
                    }
                    Err(_) => return None,
                }
            }
            let rx = self.rx.as_mut()?;
            loop {
                return match rx.recv().await {
                    Ok(Delivery::Data(key, data)) => {
                        // The mirror's bus carries every instance of the
                        // device.
                        if key != self.key {
                            continue;
                        }
                        Some(RealtimeEvent::Data(data))
                    }
                    // iroh-gossip does not say how many; at least one.
                    Ok(Delivery::GossipLagged) => Some(RealtimeEvent::Lagged(1)),
                    Ok(Delivery::Lost(n)) => Some(RealtimeEvent::Lagged(n)),
                    Err(broadcast::error::RecvError::Lagged(n)) => Some(RealtimeEvent::Lagged(n)),
                    Err(broadcast::error::RecvError::Closed) => None,
                };
            }
        })
    }

    fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        // Delivery stops at once: nothing queued is handed out.
        self.rx = None;
        self.joining = None;
        // Queued before the instance is free again, so a join that follows
        // runs after this leave on the device.
        let _ = self.ops.send(Op::Leave {
            key: self.key.clone(),
        });
        self.joined.lock().remove(&self.instance);
    }
}

impl Drop for IrohRealtime {
    fn drop(&mut self) {
        self.leave();
    }
}
