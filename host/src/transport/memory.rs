//! An in-memory chat: the reference [`Transport`] for fast tests (no
//! server, no browser needed) and a model of what a transport must do.
//!
//! [`MemoryChat::new`] makes a chat; [`MemoryChat::user`] gives one member
//! a [`Transport`]. Realtime payloads reach every other joined channel of
//! the same instance (the same user's other channels included, never the
//! sending one), through a bounded queue per channel whose overflow is
//! counted and reported. Status updates are kept per instance and fed to
//! every member, the sender included.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use futures::{stream, FutureExt, StreamExt};
use tokio::sync::{broadcast, mpsc};

use super::{
    Realtime, RealtimeEvent, Transport, TransportError, Update, UpdateEvent, UpdateFeed,
    MAX_PAYLOAD, MAX_UPDATE_SIZE,
};

/// Payloads queued per channel before the oldest new ones are dropped.
const QUEUE: usize = 256;
/// Live updates a slow feed reader may fall behind.
const LIVE_UPDATES: usize = 1024;

/// A chat that lives in this process. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryChat {
    inner: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryChat").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Joined channels per instance.
    members: HashMap<String, Vec<Member>>,
    /// Past updates and the live feed per instance.
    updates: HashMap<String, (Vec<Update>, broadcast::Sender<Update>)>,
}

struct Member {
    id: u64,
    user: String,
    tx: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl MemoryChat {
    /// An empty chat.
    pub fn new() -> Self {
        Self::default()
    }

    /// The member `name` of this chat (`selfAddr` is `name@memory`).
    pub fn user(&self, name: &str) -> MemoryUser {
        MemoryUser {
            chat: self.clone(),
            name: name.to_owned(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under this lock is a single insert or removal, so a
        // panic elsewhere cannot leave it half-changed.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One member of a [`MemoryChat`].
#[derive(Clone, Debug)]
pub struct MemoryUser {
    chat: MemoryChat,
    name: String,
}

struct MemoryChannel {
    chat: MemoryChat,
    instance: String,
    id: u64,
    rx: mpsc::Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    left: bool,
}

impl Transport for MemoryUser {
    fn self_addr(&self) -> String {
        format!("{}@memory", self.name)
    }

    fn self_name(&self) -> String {
        self.name.clone()
    }

    fn join(&self, instance: &str) -> Result<Box<dyn Realtime>, TransportError> {
        let mut state = self.chat.lock();
        state.next_id += 1;
        let id = state.next_id;
        let members = state.members.entry(instance.to_owned()).or_default();
        if members.iter().any(|m| m.user == self.name) {
            return Err(TransportError::AlreadyJoined);
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        members.push(Member {
            id,
            user: self.name.clone(),
            tx,
            dropped: dropped.clone(),
        });
        Ok(Box::new(MemoryChannel {
            chat: self.chat.clone(),
            instance: instance.to_owned(),
            id,
            rx,
            dropped,
            left: false,
        }))
    }

    fn send_update<'a>(
        &'a self,
        instance: &'a str,
        update: &'a Update,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        async move {
            if update.payload.len() > MAX_UPDATE_SIZE {
                return Err(TransportError::BadUpdate(format!(
                    "status update of {} bytes is too large",
                    update.payload.len()
                )));
            }
            serde_json::from_str::<serde::de::IgnoredAny>(&update.payload)
                .map_err(|e| TransportError::BadUpdate(format!("payload is not JSON: {e}")))?;
            let mut state = self.chat.lock();
            let (past, live) = state
                .updates
                .entry(instance.to_owned())
                .or_insert_with(|| (Vec::new(), broadcast::channel(LIVE_UPDATES).0));
            past.push(update.clone());
            let _ = live.send(update.clone()); // no reader: kept in `past`
            Ok(())
        }
        .boxed()
    }

    fn updates<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<UpdateFeed, TransportError>> {
        async move {
            // Snapshot and subscribe under one lock: nothing falls between.
            let mut state = self.chat.lock();
            let (past, live) = state
                .updates
                .entry(instance.to_owned())
                .or_insert_with(|| (Vec::new(), broadcast::channel(LIVE_UPDATES).0));
            let past: Vec<UpdateEvent> = past.iter().cloned().map(UpdateEvent::Update).collect();
            let rx = live.subscribe();
            drop(state);
            let live = stream::unfold(rx, |mut rx| async move {
                match rx.recv().await {
                    Ok(u) => Some((UpdateEvent::Update(u), rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Some((UpdateEvent::Missed(n), rx))
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            });
            let feed = stream::iter(past)
                .chain(stream::once(async {
                    UpdateEvent::PastEnd {
                        complete: true,
                        reason: None,
                    }
                }))
                .chain(live);
            Ok(Box::pin(feed) as UpdateFeed)
        }
        .boxed()
    }
}

impl Realtime for MemoryChannel {
    fn send<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>> {
        async move {
            if data.len() > MAX_PAYLOAD {
                return Err(TransportError::TooLarge { size: data.len() });
            }
            if self.left {
                return Err(TransportError::Left);
            }
            let state = self.chat.lock();
            for m in state.members.get(&self.instance).into_iter().flatten() {
                if m.id != self.id && m.tx.try_send(data.to_vec()).is_err() {
                    m.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn recv(&mut self) -> BoxFuture<'_, Option<RealtimeEvent>> {
        async move {
            if self.left {
                return None;
            }
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                return Some(RealtimeEvent::Lagged(dropped));
            }
            self.rx.recv().await.map(RealtimeEvent::Data)
        }
        .boxed()
    }

    fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let mut state = self.chat.lock();
        if let Some(members) = state.members.get_mut(&self.instance) {
            members.retain(|m| m.id != self.id);
        }
        // Delivery stops at once: what was queued is not handed out.
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for MemoryChannel {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn realtime_reaches_others_not_the_sender_and_leave_works() {
        let chat = MemoryChat::new();
        let (a, b) = (chat.user("a"), chat.user("b"));
        let mut ca = a.join("i").unwrap();
        let mut cb = b.join("i").unwrap();
        let mut other = b.join("j").unwrap();
        assert_eq!(a.join("i").err(), Some(TransportError::AlreadyJoined));
        ca.send(b"hi").await.unwrap();
        assert_eq!(cb.recv().await, Some(RealtimeEvent::Data(b"hi".to_vec())));
        assert!(ca.recv().now_or_never().is_none(), "no echo");
        assert!(other.recv().now_or_never().is_none(), "isolated");
        let big = vec![0; MAX_PAYLOAD + 1];
        assert_eq!(
            ca.send(&big).await,
            Err(TransportError::TooLarge {
                size: MAX_PAYLOAD + 1
            })
        );
        cb.leave();
        assert_eq!(cb.recv().await, None);
        ca.leave();
        assert_eq!(ca.send(b"x").await, Err(TransportError::Left));
        assert!(a.join("i").is_ok(), "join again after leave");
    }

    #[tokio::test]
    async fn updates_feed_gives_past_then_end_then_live() {
        let chat = MemoryChat::new();
        let a = chat.user("a");
        a.send_update("i", &upd("1")).await.unwrap();
        let mut feed = a.updates("i").await.unwrap();
        assert_eq!(feed.next().await, Some(UpdateEvent::Update(upd("1"))));
        assert!(matches!(
            feed.next().await,
            Some(UpdateEvent::PastEnd { complete: true, .. })
        ));
        a.send_update("i", &upd("2")).await.unwrap();
        assert_eq!(feed.next().await, Some(UpdateEvent::Update(upd("2"))));
        assert!(a.send_update("i", &upd("{")).await.is_err());
    }

    fn upd(payload: &str) -> Update {
        Update {
            payload: payload.into(),
            info: None,
            document: None,
            summary: None,
        }
    }
}
