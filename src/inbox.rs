//! The bounded per-channel queue between the engine and the application.
//!
//! Data that arrives after `join` and before the application reads is kept
//! here. The queue is bounded by item count and by payload bytes; when a new
//! delivery does not fit, the *oldest* deliveries are dropped (for realtime
//! data the newest is worth most) and the reader is told how many it lost by
//! a [`Delivery::Lagged`] item before the next one. Memory never grows
//! without bound and loss is never silent.
//!
//! The queue uses only `std` (a mutex and a [`Waker`]), so the sans-IO engine
//! can fill it without depending on any async runtime, while an async reader
//! can await it as a [`Stream`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures::Stream;
use jid::Jid;

use crate::wire::muc::RemovalReason;

/// Limits of one channel's receive queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most deliveries held at once.
    pub max_items: usize,
    /// Most payload bytes held at once.
    pub max_bytes: usize,
}

impl Default for QueueLimits {
    /// 1024 deliveries or 16 MiB: room for a burst of full-size payloads
    /// (about 130 of 128000 bytes) without letting one slow reader hold more.
    fn default() -> Self {
        QueueLimits {
            max_items: 1024,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A payload received on a realtime channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The bytes, exactly as the sender passed them to `send`.
    pub data: Vec<u8>,
    /// Who sent it: the sender's occupant JID (`room@service/nick`) in a
    /// group chat, the contact's full JID in a 1:1 chat.
    pub from: Jid,
}

/// Connection changes, as seen by every channel of a client.
///
/// The channels of one room also get both when the room alone lost us
/// (it bounced our message with `not-acceptable` or `item-not-found`, as
/// a room whose cluster node crashed does): `Disconnected` at once,
/// `Reconnected { resumed: false }` once the client has entered it again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The connection to the server was lost; the client is reconnecting.
    /// Sends fail with a typed error until it is back; peers' data sent
    /// meanwhile is lost (the channel is ephemeral).
    Disconnected,
    /// The connection is back. `resumed` is true when the server resumed
    /// the old session (XEP-0198), false when a new session was opened and
    /// the rooms were joined again.
    Reconnected {
        /// Whether the previous session was resumed.
        resumed: bool,
    },
}

/// One item read from a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A payload from another peer.
    Payload(Payload),
    /// The reader was too slow: this many deliveries were dropped from the
    /// queue (oldest first) since the last item read.
    Lagged {
        /// How many deliveries were lost.
        dropped: u64,
    },
    /// The connection changed state.
    Connection(ConnectionEvent),
    /// The room removed us by a decision of its own (kicked, banned,
    /// destroyed, …; see [`RemovalReason::is_decision`]): nothing arrives
    /// and sends fail with [`SendError::RoomNotJoined`](crate::SendError::RoomNotJoined)
    /// until the application enters the room again. Technical removals
    /// (a service shutdown) are not reported here: the room is entered
    /// again by itself, as after a reconnection.
    Removed(RemovalReason),
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Delivery>,
    bytes: usize,
    dropped: u64,
    closed: bool,
    waker: Option<Waker>,
    limits: QueueLimits,
}

fn size_of(d: &Delivery) -> usize {
    match d {
        Delivery::Payload(p) => p.data.len(),
        _ => 0,
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding this lock cannot leave the queue inconsistent
    // (every mutation is a single push/pop), so a poisoned lock is usable.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The engine's side of a channel queue.
#[derive(Debug, Clone)]
pub(crate) struct InboxWriter {
    shared: Arc<Mutex<State>>,
}

/// The application's side of a channel queue: read it with
/// [`try_recv`](Inbox::try_recv) or as a [`Stream`].
///
/// The stream ends (`None`) when the channel is left.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Mutex<State>>,
}

/// Why [`Inbox::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing is queued right now.
    #[error("no delivery queued")]
    Empty,
    /// The channel was left; nothing will arrive any more.
    #[error("the channel was left")]
    Closed,
}

pub(crate) fn inbox(limits: QueueLimits) -> (InboxWriter, Inbox) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        bytes: 0,
        dropped: 0,
        closed: false,
        waker: None,
        limits,
    }));
    (
        InboxWriter {
            shared: shared.clone(),
        },
        Inbox { shared },
    )
}

impl InboxWriter {
    /// Queues a delivery, dropping the oldest ones if it would not fit.
    /// Returns how many were dropped to make room.
    pub(crate) fn push(&self, delivery: Delivery) -> u64 {
        let mut st = lock(&self.shared);
        if st.closed {
            return 0;
        }
        let size = size_of(&delivery);
        let mut dropped = 0;
        while !st.queue.is_empty()
            && (st.queue.len() + 1 > st.limits.max_items || st.bytes + size > st.limits.max_bytes)
        {
            if let Some(old) = st.queue.pop_front() {
                st.bytes -= size_of(&old);
                dropped += 1;
            }
        }
        st.dropped += dropped;
        st.bytes += size;
        st.queue.push_back(delivery);
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        dropped
    }

    /// Ends the channel: queued deliveries are discarded at once and the
    /// reader sees the end of the stream.
    pub(crate) fn close(&self) {
        let mut st = lock(&self.shared);
        st.closed = true;
        st.queue.clear();
        st.bytes = 0;
        st.dropped = 0;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    /// Takes the next delivery, as [`Inbox::try_recv`] would: for an
    /// embedder that reads every channel through the engine.
    pub(crate) fn take(&self) -> Option<Delivery> {
        Inbox::pop(&mut lock(&self.shared))
    }

    /// Whether nothing (not even a lag report) is waiting to be read.
    pub(crate) fn is_empty(&self) -> bool {
        let st = lock(&self.shared);
        st.queue.is_empty() && st.dropped == 0
    }

    /// Bytes currently queued.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        lock(&self.shared).bytes
    }
}

impl Inbox {
    /// Takes the next delivery without waiting.
    pub fn try_recv(&self) -> Result<Delivery, TryRecvError> {
        let mut st = lock(&self.shared);
        Self::pop(&mut st).ok_or(if st.closed {
            TryRecvError::Closed
        } else {
            TryRecvError::Empty
        })
    }

    fn pop(st: &mut State) -> Option<Delivery> {
        if st.closed {
            return None;
        }
        if st.dropped > 0 {
            let dropped = std::mem::take(&mut st.dropped);
            return Some(Delivery::Lagged { dropped });
        }
        let d = st.queue.pop_front()?;
        st.bytes -= size_of(&d);
        Some(d)
    }

    /// Polls for the next delivery; `Ready(None)` once the channel is left.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut st = lock(&self.shared);
        match Self::pop(&mut st) {
            Some(d) => Poll::Ready(Some(d)),
            None if st.closed => Poll::Ready(None),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Waits for the next delivery; `None` once the channel is left.
    pub async fn recv(&self) -> Option<Delivery> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// How many deliveries are waiting to be read.
    pub fn len(&self) -> usize {
        lock(&self.shared).queue.len()
    }

    /// Whether nothing is waiting to be read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Stream for Inbox {
    type Item = Delivery;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: usize) -> Delivery {
        Delivery::Payload(Payload {
            data: vec![0; n],
            from: Jid::new("a@b/c").unwrap(),
        })
    }

    #[test]
    fn overflow_drops_oldest_and_reports() {
        let (w, r) = inbox(QueueLimits {
            max_items: 3,
            max_bytes: 1000,
        });
        for i in 0..5 {
            w.push(payload(i));
        }
        assert_eq!(r.try_recv(), Ok(Delivery::Lagged { dropped: 2 }));
        for i in 2..5 {
            assert_eq!(r.try_recv(), Ok(payload(i)));
        }
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn byte_limit_bounds_memory() {
        let (w, r) = inbox(QueueLimits {
            max_items: 100,
            max_bytes: 250,
        });
        for _ in 0..10 {
            w.push(payload(100));
            assert!(w.queued_bytes() <= 250);
        }
        assert_eq!(r.try_recv(), Ok(Delivery::Lagged { dropped: 8 }));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_single_oversize_delivery_is_still_kept() {
        // A payload larger than the byte budget alone is kept (dropping it
        // would lose the only thing queued); the budget applies to the rest.
        let (w, r) = inbox(QueueLimits {
            max_items: 10,
            max_bytes: 10,
        });
        w.push(payload(50));
        assert_eq!(r.try_recv(), Ok(payload(50)));
    }

    #[test]
    fn close_discards_and_ends() {
        let (w, r) = inbox(QueueLimits::default());
        w.push(payload(1));
        w.close();
        assert_eq!(r.try_recv(), Err(TryRecvError::Closed));
        w.push(payload(1));
        assert_eq!(r.try_recv(), Err(TryRecvError::Closed));
    }
}
