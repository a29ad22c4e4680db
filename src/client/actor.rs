//! The client's one IO task.
//!
//! It owns the XMPP stream and runs one `select!` over the stream's events
//! and the handles' commands. After each input it pumps the engine: stanzas
//! the engine queued go to the stream, room events go to whoever waits for
//! them and to [`ClientEvent`] subscribers. Our JID and whether we are
//! online are the engine's to know; the task keeps no copy.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use jid::{BareJid, FullJid};
use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit};
use tokio_xmpp::stanzastream::{Event, StanzaStage, StanzaStream, StanzaToken, StreamEvent};
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;

use super::reconnect::AttemptFailed;
use super::schedule::{self, Scheduler};
use super::{ClientEvent, Shared, UpdateItem, Updates, QUEUE_DEPTH, UPDATE_FEED_DEPTH};
use crate::engine::{
    ArchiveOutcome, ArchiveQuery, Chat, EngineEvent, ReentryWatch, RoomState, UploadQuery,
    REENTRY_ANSWER_WAIT,
};
use crate::error::{GroupError, UpdateError, UploadError};
use crate::inbox::ConnectionEvent;
use crate::wire::share::SharedAppFrame;
use crate::wire::update::UpdateFrame;

/// How long a clean close may take before the stream is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The wait before asking a room again that refused our re-entry for a
/// reason that may pass; doubled for each refusal in a row.
const REENTRY_FIRST_WAIT: Duration = Duration::from_secs(1);

/// A timer of a room's re-entry (see [`Actor::reentries`]).
pub(crate) enum ReentryTimer {
    /// Ask the room again: it refused our re-entry for a reason that may
    /// pass, or did not answer it.
    Retry(BareJid),
    /// See whether the room answered this re-entry
    /// ([`REENTRY_ANSWER_WAIT`] after it was sent).
    Answer(ReentryWatch),
}

impl ReentryTimer {
    fn room(&self) -> &BareJid {
        match self {
            ReentryTimer::Retry(room) => room,
            ReentryTimer::Answer(watch) => watch.room(),
        }
    }
}

/// How many stanzas may wait for the server's confirmation at once (see
/// [`Actor::stream_has_room`]). No deeper than the stream's transmit queue,
/// so that handing the stream a stanza never waits.
const SEND_WINDOW: usize = QUEUE_DEPTH;

/// How many bytes (about: [`schedule::weight`]) of stanzas may wait for the
/// server's confirmation at once; one stanza always may. Two full-size
/// payloads (a 128000-byte payload is a 171 KB stanza): enough to keep the
/// server busy while its confirmation of the first one comes back, and
/// little for a small payload of another channel to wait behind.
const SEND_WINDOW_BYTES: usize = 256 * 1024;

pub(crate) enum Command {
    /// A handle changed the engine's state and may have queued stanzas.
    Wake,
    /// A channel (or a room handle) queued a stanza, holding one of the
    /// client's send slots: the task keeps the slot while the stanza waits
    /// in its [`Scheduler`] (see `Channel::send` on back-pressure).
    Queued(OwnedSemaphorePermit),
    /// Enter a room; answer when the room confirms or refuses.
    EnterRoom {
        room: BareJid,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// Find the upload service, or ask one for a slot; answer with the
    /// engine's event.
    Upload {
        request: UploadRequest,
        reply: oneshot::Sender<Result<EngineEvent, UploadError>>,
    },
    /// Read the apps shared earlier from a room's archive.
    ListApps {
        room: BareJid,
        reply: oneshot::Sender<Result<Vec<SharedAppFrame>, UpdateError>>,
    },
    /// Start a feed of an instance's status updates (archive, then live).
    WatchUpdates {
        room: BareJid,
        thread: String,
        reply: oneshot::Sender<Result<Updates, UpdateError>>,
    },
}

/// An upload exchange a handle asks for.
pub(crate) enum UploadRequest {
    FindService,
    Slot {
        service: jid::Jid,
        filename: String,
        size: u64,
        content_type: Option<String>,
    },
}

/// A listing of the apps in a room's archive, under way.
pub(crate) struct AppListing {
    query: ArchiveQuery,
    apps: Vec<SharedAppFrame>,
    reply: oneshot::Sender<Result<Vec<SharedAppFrame>, UpdateError>>,
}

/// One [`Updates`] feed, as the task sees it.
pub(crate) struct UpdateFeed {
    room: BareJid,
    thread: String,
    tx: mpsc::Sender<UpdateItem>,
    /// Present while the archive is read: the archive ids seen so far, and
    /// the live updates held back until the archive has been read (so that
    /// the feed stays in the room's order and gives each update once).
    replay: Option<Replay>,
    missed: u64,
}

struct Replay {
    query: ArchiveQuery,
    seen: HashSet<String>,
    held: VecDeque<UpdateFrame>,
}

impl UpdateFeed {
    /// Hands `item` to the reader; a full feed loses it and says so later.
    fn offer(&mut self, item: UpdateItem) {
        if self.missed > 0 {
            match self.tx.try_send(UpdateItem::Missed { count: self.missed }) {
                Ok(()) => self.missed = 0,
                Err(_) => {
                    self.missed += 1;
                    return;
                }
            }
        }
        if self.tx.try_send(item).is_err() {
            self.missed += 1;
        }
    }

    fn live(&mut self, frame: UpdateFrame) {
        match &mut self.replay {
            Some(r) => {
                if r.held.len() >= UPDATE_FEED_DEPTH {
                    r.held.pop_front();
                    self.missed += 1;
                }
                r.held.push_back(frame);
            }
            None => self.offer(UpdateItem::Update {
                frame,
                archived: false,
            }),
        }
    }
}

pub(crate) struct Actor {
    pub shared: Arc<Shared>,
    pub stream: StanzaStream,
    /// Tokens of the stanzas handed to the stream that the server has not
    /// confirmed yet (oldest first), with their weights: the send window.
    /// See [`Actor::stream_has_room`].
    pub in_flight: VecDeque<(StanzaToken, usize)>,
    /// The sum of the weights in `in_flight`.
    pub in_flight_bytes: usize,
    /// The engine's stanzas that wait for room in the window, in the order
    /// they are to go out (round robin over the channels).
    pub scheduler: Scheduler,
    /// Send slots of the stanzas waiting in `scheduler` (one per stanza,
    /// oldest first; see [`Command::Queued`]).
    pub held: VecDeque<OwnedSemaphorePermit>,
    /// The server confirmed a stanza of the current session (XEP-0198 is
    /// in use): a stanza the session loses unconfirmed is a loss to report.
    pub acked_in_session: bool,
    /// Stanzas of our own (session presence) to send before the engine's.
    pub priority: VecDeque<Stanza>,
    /// The send window is full while stanzas wait for it: wake up when the
    /// server confirms one.
    pub blocked: bool,
    pub commands: mpsc::Receiver<Command>,
    /// Shutdown requests travel apart from the commands, so that a client
    /// whose stream is blocked can still be shut down.
    pub shutdown: mpsc::Receiver<oneshot::Sender<()>>,
    pub reports: mpsc::Receiver<AttemptFailed>,
    pub events: broadcast::Sender<ClientEvent>,
    pub room_waiters: HashMap<BareJid, Vec<oneshot::Sender<Result<(), GroupError>>>>,
    pub update_feeds: Vec<UpdateFeed>,
    pub upload_waiters: HashMap<UploadQuery, oneshot::Sender<Result<EngineEvent, UploadError>>>,
    pub app_listings: Vec<AppListing>,
    /// Re-entries to ask again (refused for a reason that may pass, or
    /// unanswered; see [`Engine::reentry_refused`]) and re-entries waiting
    /// for their answer (see [`Engine::poll_reentry_watch`]), with when
    /// each is due.
    ///
    /// [`Engine::reentry_refused`]: crate::Engine::reentry_refused
    /// [`Engine::poll_reentry_watch`]: crate::Engine::poll_reentry_watch
    pub reentries: Vec<(ReentryTimer, tokio::time::Instant)>,
}

impl Actor {
    pub(crate) async fn run(mut self) {
        let mut done = Vec::new();
        // What `start_session` queued before the task started.
        self.pump().await;
        loop {
            tokio::select! {
                Some(d) = self.shutdown.recv() => {
                    done.push(d);
                    break;
                }
                // Always taken: senders are held back by the send slots, not
                // here, so that a stanza of one channel is never stuck
                // behind a queue that another channel filled.
                cmd = self.commands.recv() => match cmd {
                    // Every handle is gone: nobody can use the client any more.
                    None => break,
                    Some(Command::Wake) => {}
                    Some(Command::Queued(slot)) => self.held.push_back(slot),
                    Some(Command::EnterRoom { room, reply }) => self.enter_room(room, reply),
                    Some(Command::WatchUpdates { room, thread, reply }) => {
                        let _ = reply.send(self.watch_updates(room, thread));
                    }
                    Some(Command::Upload { request, reply }) => self.upload(request, reply),
                    Some(Command::ListApps { room, reply }) => {
                        match self.shared.engine().query_archive(&room) {
                            Ok(query) => self.app_listings.push(AppListing { query, apps: Vec::new(), reply }),
                            Err(e) => { let _ = reply.send(Err(e)); }
                        }
                    }
                },
                ev = self.stream.next() => match ev {
                    // The stream ended on its own: only after a fatal error.
                    None => {
                        self.shared.engine().set_offline();
                        let _ = self.events.send(ClientEvent::Closed);
                        // Nothing more can be sent; answer the handles until
                        // they are all dropped or ask for shutdown.
                        self.drain_commands_after_failure(&mut done).await;
                        break;
                    }
                    Some(Event::Stanza(stanza)) => {
                        self.shared.engine().handle_stanza(stanza);
                    }
                    Some(Event::Stream(StreamEvent::Reset { bound_jid, .. })) => {
                        self.session_replaced();
                        match bound_jid.try_into_full() {
                            Ok(own) => self.start_session(own),
                            Err(j) => tracing::warn!(%j, "server bound a JID without resource; ignored"),
                        }
                    }
                    Some(Event::Stream(StreamEvent::Suspended)) => {
                        if let Some(cause) = super::connector::take_cause(&self.shared.causes) {
                            let _ = self.events.send(ClientEvent::ConnectionDropped(cause));
                        }
                        self.shared.engine().set_offline();
                        self.connection_event(ConnectionEvent::Disconnected);
                    }
                    Some(Event::Stream(StreamEvent::Resumed)) => {
                        self.shared.session_up.store(true, Ordering::Release);
                        let resumed = {
                            let mut engine = self.shared.engine();
                            let own = engine.own_jid().cloned();
                            own.map(|own| engine.set_online(own, true)).is_some()
                        };
                        if resumed {
                            self.connection_event(ConnectionEvent::Reconnected { resumed: true });
                        }
                    }
                },
                // The server confirmed the oldest stanza (or the stream is
                // done with it): room for more.
                _ = wait_done(&mut self.in_flight), if self.blocked => {}
                _ = next_reentry(&self.reentries), if !self.reentries.is_empty() => {
                    self.reentry_timers_due();
                }
                Some(report) = self.reports.recv() => {
                    let _ = self.events.send(ClientEvent::ReconnectFailed {
                        attempt: report.attempt,
                        error: report.error,
                    });
                }
            }
            self.pump().await;
        }
        self.shutdown().await;
        for d in done {
            let _ = d.send(());
        }
    }

    /// A new session is bound to `own` (the first, or after a reconnection
    /// that could not resume): announce ourselves and re-enter the rooms.
    pub(crate) fn start_session(&mut self, own: FullJid) {
        self.shared.session_up.store(true, Ordering::Release);
        let first = !self.shared.engine().was_ever_online();
        // Initial presence first: without it the server does not route
        // 1:1 messages sent to our bare JID to this session.
        self.priority
            .push_back(Stanza::Presence(Presence::new(PresenceType::None)));
        self.shared.engine().set_online(own, false);
        if !first {
            self.connection_event(ConnectionEvent::Reconnected { resumed: false });
        }
    }

    fn connection_event(&self, ev: ConnectionEvent) {
        let _ = self.events.send(ClientEvent::Connection(ev));
    }

    fn enter_room(&mut self, room: BareJid, reply: oneshot::Sender<Result<(), GroupError>>) {
        let mut engine = self.shared.engine();
        engine.join_room(room.clone(), &self.shared.nick);
        if engine.room_state(&room) == Some(RoomState::Joined) {
            let _ = reply.send(Ok(()));
        } else {
            self.room_waiters.entry(room).or_default().push(reply);
        }
    }

    fn upload(
        &mut self,
        request: UploadRequest,
        reply: oneshot::Sender<Result<EngineEvent, UploadError>>,
    ) {
        let mut engine = self.shared.engine();
        let started = match request {
            UploadRequest::FindService => engine.find_upload_service(),
            UploadRequest::Slot {
                service,
                filename,
                size,
                content_type,
            } => engine.request_upload_slot(&service, &filename, size, content_type.as_deref()),
        };
        drop(engine);
        match started {
            Ok(query) => {
                self.upload_waiters.insert(query, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn watch_updates(&mut self, room: BareJid, thread: String) -> Result<Updates, UpdateError> {
        let query = self.shared.engine().query_archive(&room)?;
        let (tx, rx) = mpsc::channel(UPDATE_FEED_DEPTH);
        self.update_feeds.push(UpdateFeed {
            room,
            thread,
            tx,
            replay: Some(Replay {
                query,
                seen: HashSet::new(),
                held: VecDeque::new(),
            }),
            missed: 0,
        });
        Ok(Updates { rx })
    }

    /// Sorts an update event into the feeds it concerns.
    fn dispatch_update(&mut self, ev: EngineEvent) {
        match ev {
            EngineEvent::Update {
                chat: Chat::Group(room),
                frame,
            } => {
                for f in &mut self.update_feeds {
                    if f.room == room && f.thread == frame.thread {
                        f.live((*frame).clone());
                    }
                }
            }
            EngineEvent::ArchivedUpdate { query, frame, .. } => {
                for f in &mut self.update_feeds {
                    let Some(r) = &mut f.replay else { continue };
                    if r.query != query || f.thread != frame.thread {
                        continue;
                    }
                    if let Some(id) = &frame.archive_id {
                        r.seen.insert(id.clone());
                    }
                    f.offer(UpdateItem::Update {
                        frame: (*frame).clone(),
                        archived: true,
                    });
                }
            }
            EngineEvent::ArchiveEnd { query, outcome, .. } => {
                for f in &mut self.update_feeds {
                    if f.replay.as_ref().map(|r| &r.query) != Some(&query) {
                        continue;
                    }
                    let Some(r) = f.replay.take() else { continue };
                    f.offer(UpdateItem::ArchiveEnd(outcome.clone()));
                    for frame in r.held {
                        let again = frame
                            .archive_id
                            .as_ref()
                            .is_some_and(|id| r.seen.contains(id));
                        if !again {
                            f.offer(UpdateItem::Update {
                                frame,
                                archived: false,
                            });
                        }
                    }
                }
            }
            _ => {}
        }
        // A reader that dropped its feed is forgotten.
        self.update_feeds.retain(|f| !f.tx.is_closed());
    }

    /// Sends what the engine queued (as far as the send window has room,
    /// in the [`Scheduler`]'s order) and dispatches its events.
    async fn pump(&mut self) {
        {
            let mut engine = self.shared.engine();
            while let Some(s) = engine.poll_transmit_stanza() {
                self.scheduler.push(s);
            }
            // Each re-entry just queued waits for its answer, a newer one
            // of a room replacing the older.
            let due = tokio::time::Instant::now() + REENTRY_ANSWER_WAIT;
            while let Some(watch) = engine.poll_reentry_watch() {
                self.reentries.retain(
                    |(t, _)| !matches!(t, ReentryTimer::Answer(w) if w.room() == watch.room()),
                );
                self.reentries.push((ReentryTimer::Answer(watch), due));
            }
        }
        loop {
            if !self.stream_has_room() {
                // Woken by the server's confirmation only when something
                // waits for it.
                self.blocked = !self.priority.is_empty() || !self.scheduler.is_empty();
                break;
            }
            self.blocked = false;
            let next = match self.priority.pop_front() {
                Some(s) => Some((schedule::weight(&s), s)),
                None => self.scheduler.pop().map(|(s, w)| (w, s)),
            };
            let Some((weight, stanza)) = next else { break };
            self.transmit(stanza, weight).await;
        }
        // A slot is free again once its stanza left the scheduler (which
        // stanza held which slot does not matter: only how many wait).
        while self.held.len() > self.scheduler.len() {
            self.held.pop_front();
        }
        loop {
            let next = self.shared.engine().poll_event();
            let Some(ev) = next else { break };
            self.dispatch(ev);
        }
        if !self.update_feeds.is_empty() {
            // The feeds of a room we left end with it.
            let engine = self.shared.engine();
            self.update_feeds
                .retain(|f| engine.room_state(&f.room).is_some());
        }
    }

    /// Whether the send window has room for another stanza.
    ///
    /// The window holds the stanzas the server has not confirmed yet
    /// (XEP-0198 `<a/>`), at most [`SEND_WINDOW`] stanzas and (but for the
    /// first) [`SEND_WINDOW_BYTES`]; what does not fit waits in the
    /// [`Scheduler`], whose slots `send().await` waits for, so a sender
    /// cannot outrun the server. The bytes bound keeps what is handed to
    /// the stream (which sends in order, and which no one can overtake
    /// then) to about two full-size payloads: a small payload of another
    /// channel, taken from the scheduler in its turn, goes out behind that,
    /// not behind the 64 × 171 KB that the stanza count alone allowed. Without the
    /// window a flood ran ahead of ejabberd, which stopped waiting for our
    /// acknowledgements (tokio-xmpp answers the server's `<r/>` only once
    /// its transmit queue is empty, which it never was) and closed the
    /// session after `max_ack_queue` (5000) unconfirmed stanzas: the
    /// sender left the room and the stanzas in flight were lost. A full
    /// window empties the transmit queue, so our answers go out too.
    ///
    /// It also bounds the stream's transmit queue: waiting there would be
    /// a deadlock. While this task waits to send, it does not read, the
    /// stream's receive queue fills, the stream stops reading the socket,
    /// and a server that blocks on writing to us (a room reflecting a flood
    /// back to its sender does) stops reading from us, so the transmit
    /// queue never drains. The window is no deeper than that queue.
    ///
    /// A stream without XEP-0198 confirms nothing: its stanzas leave the
    /// window once written to the socket (the stream drops their tokens
    /// then), and `send().await` waits for the socket only.
    fn stream_has_room(&mut self) -> bool {
        let mut lost = 0;
        while self.in_flight.front_mut().is_some_and(|(t, _)| is_done(t)) {
            if let Some((t, w)) = self.in_flight.pop_front() {
                self.in_flight_bytes -= w;
                lost += self.retire(&t);
            }
        }
        self.report_unconfirmed(lost);
        self.in_flight.is_empty()
            || (self.in_flight.len() < SEND_WINDOW && self.in_flight_bytes < SEND_WINDOW_BYTES)
    }

    /// Takes a stanza the stream is done with out of the window: 1 if it
    /// was lost, else 0.
    fn retire(&mut self, token: &StanzaToken) -> u64 {
        match StanzaStage::from(&token.state()) {
            StanzaStage::Acked => {
                self.acked_in_session = true;
                0
            }
            // Written but never confirmed, on a session that confirms:
            // the session was discarded with it (a resumed one would have
            // sent it again and kept tracking it).
            StanzaStage::Sent if self.acked_in_session => 1,
            // A session without XEP-0198: written is all we can know.
            StanzaStage::Queued | StanzaStage::Sent => 0,
            StanzaStage::Failed | StanzaStage::Dropped => 1,
        }
    }

    /// The stream started a new session (the old one could not be
    /// resumed): what the old one had not confirmed may never have reached
    /// the server. Counted and reported, never silent.
    fn session_replaced(&mut self) {
        let mut lost = 0;
        let mut waiting = VecDeque::new();
        for (t, w) in std::mem::take(&mut self.in_flight) {
            match StanzaStage::from(&t.state()) {
                // Still in the stream's queue: goes out on the new session.
                StanzaStage::Queued => waiting.push_back((t, w)),
                _ => lost += self.retire(&t),
            }
        }
        self.in_flight_bytes = waiting.iter().map(|(_, w)| w).sum();
        self.in_flight = waiting;
        self.acked_in_session = false;
        self.report_unconfirmed(lost);
    }

    fn report_unconfirmed(&self, stanzas: u64) {
        if stanzas > 0 {
            tracing::warn!(stanzas, "stanzas lost unconfirmed with their session");
            let _ = self.events.send(ClientEvent::Unconfirmed { stanzas });
        }
    }

    async fn transmit(&mut self, stanza: Stanza, weight: usize) {
        // Returns at once: `stream_has_room` said the window has room, the
        // window is no deeper than the stream's queue, and this task is
        // the stream's only sender.
        let token = self.stream.send(Box::new(stanza)).await;
        self.in_flight.push_back((token, weight));
        self.in_flight_bytes += weight;
    }

    fn dispatch(&mut self, ev: EngineEvent) {
        let query = match &ev {
            EngineEvent::UploadService { query, .. } | EngineEvent::UploadSlot { query, .. } => {
                Some(query.clone())
            }
            _ => None,
        };
        if let Some(w) = query.and_then(|q| self.upload_waiters.remove(&q)) {
            let _ = w.send(Ok(ev));
            return;
        }
        if let EngineEvent::ArchivedApp { query, frame, .. } = &ev {
            if let Some(l) = self.app_listings.iter_mut().find(|l| &l.query == query) {
                l.apps.push((**frame).clone());
            }
            return;
        }
        if let EngineEvent::ArchiveEnd { query, outcome, .. } = &ev {
            if let Some(pos) = self.app_listings.iter().position(|l| &l.query == query) {
                let l = self.app_listings.remove(pos);
                let answer = match outcome {
                    ArchiveOutcome::Interrupted => Err(UpdateError::Disconnected),
                    _ => Ok(l.apps),
                };
                let _ = l.reply.send(answer);
                return;
            }
        }
        if matches!(
            ev,
            EngineEvent::Update { .. }
                | EngineEvent::ArchivedUpdate { .. }
                | EngineEvent::ArchiveEnd { .. }
        ) {
            return self.dispatch_update(ev);
        }
        match &ev {
            EngineEvent::RoomJoined { room, .. } => {
                for w in self.room_waiters.remove(room).unwrap_or_default() {
                    let _ = w.send(Ok(()));
                }
            }
            EngineEvent::RoomJoinFailed { room, condition } => {
                self.schedule_retry(room);
                for w in self.room_waiters.remove(room).unwrap_or_default() {
                    let _ = w.send(Err(GroupError::Refused {
                        room: room.clone(),
                        condition: condition.clone(),
                    }));
                }
            }
            _ => {}
        }
        let _ = self.events.send(ClientEvent::Room(ev));
    }

    /// A refused or unanswered re-entry that may pass is asked again
    /// later, waiting longer each time (1, 2, 4, … s).
    fn schedule_retry(&mut self, room: &BareJid) {
        let refused = self.shared.engine().reentry_refused(room);
        if let Some(n) = refused {
            let wait = REENTRY_FIRST_WAIT * 2u32.pow(n.saturating_sub(1).min(5));
            // Whatever else was timed for the room is done with.
            self.reentries.retain(|(t, _)| t.room() != room);
            self.reentries.push((
                ReentryTimer::Retry(room.clone()),
                tokio::time::Instant::now() + wait,
            ));
        }
    }

    /// Acts on the re-entry timers that are due.
    fn reentry_timers_due(&mut self) {
        let now = tokio::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reentries)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.reentries = later;
        for (timer, _) in due {
            match timer {
                ReentryTimer::Retry(room) => self.shared.engine().retry_reentry(&room),
                ReentryTimer::Answer(watch) => {
                    let again = self.shared.engine().reentry_unanswered(&watch);
                    if again {
                        tracing::debug!(room = %watch.room(), "re-entry unanswered; asking again");
                        self.schedule_retry(watch.room());
                    }
                }
            }
        }
    }

    async fn drain_commands_after_failure(&mut self, done: &mut Vec<oneshot::Sender<()>>) {
        // Nothing queued can be sent any more: free the senders' slots.
        self.scheduler.clear();
        self.held.clear();
        loop {
            tokio::select! {
                Some(d) = self.shutdown.recv() => {
                    done.push(d);
                    return;
                }
                cmd = self.commands.recv() => match cmd {
                    None => return,
                    Some(Command::EnterRoom { reply, .. }) => {
                        let _ = reply.send(Err(GroupError::Closed));
                    }
                    Some(Command::WatchUpdates { reply, .. }) => {
                        let _ = reply.send(Err(UpdateError::Closed));
                    }
                    Some(Command::Upload { reply, .. }) => {
                        let _ = reply.send(Err(UploadError::Closed));
                    }
                    Some(Command::ListApps { reply, .. }) => {
                        let _ = reply.send(Err(UpdateError::Closed));
                    }
                    // The slot is freed as the command is dropped.
                    Some(Command::Wake | Command::Queued(_)) => {
                        // Sends already failed in the engine (offline).
                        while self.shared.engine().poll_transmit_stanza().is_some() {}
                    }
                },
            }
        }
    }

    async fn shutdown(mut self) {
        self.shared.closed.store(true, Ordering::Release);
        let online = {
            let mut engine = self.shared.engine();
            engine.close_all();
            engine.is_online()
        };
        // Like the engine's queue: what channels queued is not sent after
        // they ended.
        self.scheduler.clear();
        self.held.clear();
        if online {
            // Leave the rooms politely, then close the stream.
            self.pump().await;
            // The queue may be full of a flood; the goodbye is not worth a
            // wait past the close timeout.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                self.stream
                    .send(Box::new(Stanza::Presence(Presence::new(
                        PresenceType::Unavailable,
                    ))))
                    .await;
                self.stream.close().await;
            })
            .await;
        }
        // When offline the stream's worker waits for a reconnection that the
        // reconnector now abandons (see login.rs); dropping the stream here
        // ends our side without waiting for it.
        for (_, waiters) in self.room_waiters.drain() {
            for w in waiters {
                let _ = w.send(Err(GroupError::Closed));
            }
        }
        let _ = self.events.send(ClientEvent::Closed);
    }
}

/// Sleeps until the earliest re-entry in `reentries` is due.
async fn next_reentry(reentries: &[(ReentryTimer, tokio::time::Instant)]) {
    match reentries.iter().map(|(_, at)| *at).min() {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether the stream is done with a stanza: the server confirmed it, or
/// it failed, or the stream no longer tracks it (a stream without XEP-0198
/// forgets a stanza once it is written; a replaced session forgets the
/// unconfirmed ones).
fn is_done(token: &mut StanzaToken) -> bool {
    token.wait_for(StanzaStage::Acked).now_or_never().is_some()
}

/// Waits until the stream is done with the oldest stanza in the window.
async fn wait_done(in_flight: &mut VecDeque<(StanzaToken, usize)>) {
    match in_flight.front_mut() {
        Some((token, _)) => {
            token.wait_for(StanzaStage::Acked).await;
        }
        None => std::future::pending().await,
    }
}
