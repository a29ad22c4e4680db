//! The status updates of one served instance, numbered with the host's own
//! serials.
//!
//! A task ([`UpdateStore::feed`]) reads the transport's feed (past updates
//! first, then live ones) into a list; an update's serial is its place in
//! the list, from 1. Every page of the origin reads the same list, so a
//! reloaded page sees the same serials, and a host that restarts rebuilds
//! the list from the chat's store (the room's archive over XMPP) in the
//! same order. Pages are told of new entries through a version counter, so
//! a slow page never makes the host queue anything: it reads the list at
//! its own pace.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::transport::{Transport, UpdateEvent};

/// How long pages wait for the past updates before their replay goes on
/// without the rest (a store that never answers must not hang an app).
const PAST_TIMEOUT: Duration = Duration::from_secs(15);

/// The most bytes of updates kept per instance: far above what real apps
/// produce, a bound on what a flood can make the host hold.
const MAX_BYTES: usize = 256 << 20;

/// The updates of one instance.
pub(crate) struct UpdateStore {
    inner: Mutex<Inner>,
    version: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    /// Each update as the JSON object a page gets (payload, info,
    /// document, summary), ready to send.
    list: Vec<Arc<str>>,
    past_done: bool,
    bytes: usize,
}

/// A piece of the list, for one page.
pub(crate) struct Slice {
    /// Updates from the requested index on.
    pub(crate) updates: Vec<Arc<str>>,
    /// The number of updates known: the largest serial.
    pub(crate) max_serial: usize,
    /// Whether the past updates have all been read.
    pub(crate) past_done: bool,
}

impl UpdateStore {
    pub(crate) fn new() -> Self {
        UpdateStore {
            inner: Mutex::new(Inner::default()),
            version: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes whenever an update arrives or the past is done.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// At most `max` updates from index `from` (serial `from + 1`) on.
    pub(crate) fn slice(&self, from: usize, max: usize) -> Slice {
        let inner = self.lock();
        let start = from.min(inner.list.len());
        let end = start.saturating_add(max).min(inner.list.len());
        Slice {
            updates: inner.list[start..end].to_vec(),
            max_serial: inner.list.len(),
            past_done: inner.past_done,
        }
    }

    fn push(&self, json: String) {
        {
            let mut inner = self.lock();
            if inner.bytes + json.len() > MAX_BYTES {
                tracing::warn!("status update dropped: the instance holds {MAX_BYTES} bytes");
                return;
            }
            inner.bytes += json.len();
            inner.list.push(json.into());
        }
        self.version.send_modify(|v| *v += 1);
    }

    fn past_done(&self) {
        let changed = !std::mem::replace(&mut self.lock().past_done, true);
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
    }

    /// Reads the transport's updates of `instance` into `store` until the
    /// feed ends.
    pub(crate) async fn feed(store: Arc<Self>, transport: Arc<dyn Transport>, instance: String) {
        let give_up = tokio::time::sleep(PAST_TIMEOUT);
        tokio::pin!(give_up);
        let mut feed = match transport.updates(&instance).await {
            Ok(feed) => feed,
            Err(e) => {
                tracing::warn!(instance, "status updates unavailable: {e}");
                store.past_done();
                return;
            }
        };
        loop {
            tokio::select! {
                item = feed.next() => match item {
                    Some(UpdateEvent::Update(u)) => match page_json(&u) {
                        Some(json) => store.push(json),
                        None => tracing::warn!(instance, "status update with a payload that is not JSON dropped"),
                    },
                    Some(UpdateEvent::PastEnd { complete, reason }) => {
                        if !complete {
                            tracing::warn!(instance, "past status updates incomplete: {}", reason.unwrap_or_default());
                        }
                        store.past_done();
                    }
                    Some(UpdateEvent::Missed(n)) => {
                        tracing::warn!(instance, "{n} status updates were lost (host too slow)");
                    }
                    None => break,
                },
                _ = &mut give_up, if !store.lock().past_done => {
                    tracing::warn!(instance, "past status updates not read within {PAST_TIMEOUT:?}; going on without them");
                    store.past_done();
                }
            }
        }
        store.past_done();
    }
}

/// The update as a page gets it: the payload as JSON (not text), and the
/// optional fields.
fn page_json(u: &crate::transport::Update) -> Option<String> {
    let payload: serde_json::Value = serde_json::from_str(&u.payload).ok()?;
    let mut obj = serde_json::Map::new();
    obj.insert("payload".into(), payload);
    for (key, value) in [
        ("info", &u.info),
        ("document", &u.document),
        ("summary", &u.summary),
    ] {
        if let Some(v) = value {
            obj.insert(key.into(), v.clone().into());
        }
    }
    Some(serde_json::Value::Object(obj).to_string())
}
