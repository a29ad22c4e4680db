//! A complete backend for the suite, written the way an outside implementer
//! writes one: against `spec-tests`' public API only, with nothing else
//! but tokio.
//!
//! The transport is an in-process broadcast hub: a chat is a number, a
//! channel is an inbox registered under (chat, app instance), and `send`
//! puts a copy into every other inbox registered there. Each inbox is a
//! bounded queue that drops its oldest payload when full and reports the
//! count as `Lagged` before the next one it delivers (rule 2: overflow is
//! reported, memory is bounded).
//!
//! ```sh
//! cargo run -p spec-tests --example broadcast    # the runner's table for this backend
//! cargo test -p spec-tests --test broadcast      # one #[test] per case (tests/broadcast.rs)
//! ```
//!
//! It declares `multi_device` (a second device is one more member of the
//! chat) but not `restart` (there is no transport to restart), so one case
//! is skipped and every other must pass.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use spec_tests::cases::MAX_PAYLOAD;
use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};
use tokio::sync::Notify;

/// Payloads an inbox holds before it drops the oldest.
const INBOX_CAPACITY: usize = 1024;

/// The harness: the hub, plus how many members each chat has.
#[derive(Default)]
pub struct BroadcastHarness {
    hub: Hub,
    /// Members per chat, by chat number.
    chats: Vec<usize>,
}

impl BroadcastHarness {
    /// A new, empty hub.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A chat: its number.
#[derive(Debug, Clone, Copy)]
pub struct BroadcastChat(usize);

/// Who is joined where: (chat, app instance) → the joined members' inboxes.
/// An inbox is held by its channel alone; the hub keeps a weak reference,
/// so a channel that is left or dropped disappears from the hub by itself.
type Hub = Arc<Mutex<HashMap<(usize, String), Vec<(Member, Weak<Inbox>)>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock already failed the case.
    m.lock().expect("lock poisoned by an earlier panic")
}

impl Harness for BroadcastHarness {
    type Chat = BroadcastChat;
    type Channel = BroadcastChannel;

    fn name(&self) -> String {
        "broadcast".to_owned()
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::NONE;
        caps.multi_device = true;
        caps
    }

    async fn new_chat(&mut self, members: usize) -> Result<BroadcastChat, HarnessError> {
        self.chats.push(members);
        Ok(BroadcastChat(self.chats.len() - 1))
    }

    async fn other_chat(&mut self, chat: &BroadcastChat) -> Result<BroadcastChat, HarnessError> {
        let members = self.members(chat)?;
        self.new_chat(members).await
    }

    async fn join(
        &mut self,
        chat: &BroadcastChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<BroadcastChannel, JoinFailure>, HarnessError> {
        if member >= self.members(chat)? {
            return Err(HarnessError(format!(
                "no member {member} in chat {}",
                chat.0
            )));
        }
        let topic = (chat.0, instance.to_owned());
        let mut hub = lock(&self.hub);
        let joined = hub.entry(topic.clone()).or_default();
        joined.retain(|(_, inbox)| inbox.strong_count() > 0);
        if joined.iter().any(|(m, _)| *m == member) {
            return Ok(Err(JoinFailure::AlreadyJoined));
        }
        let inbox = Arc::new(Inbox::default());
        joined.push((member, Arc::downgrade(&inbox)));
        Ok(Ok(BroadcastChannel {
            hub: self.hub.clone(),
            topic,
            inbox: Some(inbox),
        }))
    }

    async fn add_device(
        &mut self,
        chat: &BroadcastChat,
        _member: Member,
    ) -> Result<Member, HarnessError> {
        // Another device is simply one more member of the chat.
        self.members(chat)?;
        let members = &mut self.chats[chat.0];
        *members += 1;
        Ok(*members - 1)
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        Err(HarnessError::new(
            "an in-process hub has nothing to restart",
        ))
    }
}

impl BroadcastHarness {
    fn members(&self, chat: &BroadcastChat) -> Result<usize, HarnessError> {
        self.chats
            .get(chat.0)
            .copied()
            .ok_or_else(|| HarnessError(format!("unknown chat {}", chat.0)))
    }
}

/// One joined channel.
pub struct BroadcastChannel {
    hub: Hub,
    topic: (usize, String),
    /// `None` once left.
    inbox: Option<Arc<Inbox>>,
}

impl Channel for BroadcastChannel {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        // The size check comes first, before anything is delivered (rule 3).
        if data.len() > MAX_PAYLOAD {
            return Err(SendFailure::TooLarge);
        }
        let Some(own) = &self.inbox else {
            return Err(SendFailure::Left);
        };
        let own = Arc::downgrade(own);
        let hub = lock(&self.hub);
        for (_, inbox) in hub.get(&self.topic).into_iter().flatten() {
            // Never back to the sender (rule 5).
            if Weak::ptr_eq(inbox, &own) {
                continue;
            }
            if let Some(inbox) = inbox.upgrade() {
                inbox.push(data.to_vec());
            }
        }
        Ok(())
    }

    async fn recv(&mut self, timeout: Duration) -> Received {
        let Some(inbox) = &self.inbox else {
            return Received::Closed;
        };
        let wait = async {
            loop {
                if let Some(item) = inbox.pop() {
                    return item;
                }
                // A push between `pop` and here leaves a permit: no wake-up
                // is lost.
                inbox.ready.notified().await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Received::Timeout)
    }

    async fn leave(&mut self) {
        // Dropping the inbox unregisters it and discards what it queued
        // (rule 4: leave stops delivery at once). Idempotent.
        self.inbox = None;
    }
}

/// A bounded queue that drops its oldest payload when full.
#[derive(Default)]
struct Inbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    payloads: VecDeque<Vec<u8>>,
    /// Dropped since the reader last heard of it.
    dropped: u64,
}

impl Inbox {
    fn push(&self, data: Vec<u8>) {
        let mut q = lock(&self.queue);
        if q.payloads.len() == INBOX_CAPACITY {
            q.payloads.pop_front();
            q.dropped += 1;
        }
        q.payloads.push_back(data);
        drop(q);
        self.ready.notify_one();
    }

    /// The report of what was dropped comes before the payloads that were
    /// queued after it, which are all newer than the dropped ones.
    fn pop(&self) -> Option<Received> {
        let mut q = lock(&self.queue);
        if q.dropped > 0 {
            return Some(Received::Lagged(std::mem::take(&mut q.dropped)));
        }
        q.payloads.pop_front().map(Received::Payload)
    }
}

/// The runner: one table for this backend, compared with the expectations
/// (there are none for `broadcast`: every case that runs must pass).
#[allow(dead_code)] // tests/broadcast.rs includes this file as a module
fn main() {
    let backends = vec![spec_tests::runner::Backend::new(
        "broadcast",
        BroadcastHarness::new,
    )];
    std::process::exit(spec_tests::runner::main(backends));
}
