//! The sans-IO engine: the realtime contract as a state machine.
//!
//! The engine does no IO, owns no clock, draws no random numbers of its own
//! (stanza ids come from a generator you may replace) and needs no async
//! runtime. Everything XMPP-shaped it reads or writes goes through
//! [`crate::wire`].
//!
//! **Inputs.** One stanza input, [`handle_stanza`](Engine::handle_stanza)
//! (typed, as tokio-xmpp and xmpp-parsers deliver it), with two thin
//! wrappers for messengers that hold an element
//! ([`handle_element`](Engine::handle_element)) or XML text
//! ([`handle_xml`](Engine::handle_xml)). Local commands are methods:
//! [`join`](Engine::join), [`send`](Engine::send), [`leave`](Engine::leave),
//! rooms ([`join_room`](Engine::join_room), [`adopt_room`](Engine::adopt_room),
//! [`leave_room`](Engine::leave_room)) and the connection
//! ([`set_online`](Engine::set_online), [`set_offline`](Engine::set_offline)).
//!
//! **Outputs.** After any input, call [`poll`](Engine::poll) until it returns
//! `None`: it yields stanzas to transmit, [`EngineEvent`]s about rooms and,
//! for a messenger with one event loop, every channel's deliveries in one
//! place. Deliveries also wait in each channel's bounded [`Inbox`] (returned
//! by `join`), which an async reader awaits instead;
//! [`poll_transmit`](Engine::poll_transmit) and
//! [`poll_event`](Engine::poll_event) are the two narrower views our own
//! client uses.
//!
//! This is the part a messenger with its own XMPP connection embeds: feed it
//! every stanza the connection receives, send what `poll` returns.
//!
//! ```
//! use webxdc_realtime_xmpp::engine::{Chat, Engine, EngineConfig, Handled, Output};
//! use webxdc_realtime_xmpp::Delivery;
//!
//! let mut engine = Engine::new(EngineConfig::default());
//! engine.set_online("alice@example.org/phone".parse().unwrap(), false);
//! let room: jid::BareJid = "team@conference.example.org".parse().unwrap();
//! // The messenger is already in the room under the nick "alice-phone".
//! engine.adopt_room(room.clone(), "alice-phone");
//! let (ch, inbox) = engine.join(Chat::Group(room), "instance-thread").unwrap();
//!
//! engine.send(ch, b"hello").unwrap();
//! let out = engine.poll_transmit().unwrap(); // hand this to your XMPP stream
//! assert_eq!(out.attr("type"), Some("groupchat"));
//! assert!(engine.poll().is_none()); // nothing else to do
//!
//! let incoming = "<message xmlns='jabber:client' type='groupchat'
//!     from='team@conference.example.org/bob' to='alice@example.org/phone'>
//!   <thread>instance-thread</thread><no-store xmlns='urn:xmpp:hints'/>
//!   <x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>";
//! assert_eq!(engine.handle_xml(incoming), Handled::Delivered(ch));
//! // One place to poll: the delivery comes out of `poll` (or `inbox`).
//! match engine.poll() {
//!     Some(Output::Delivery { channel, delivery: Delivery::Payload(p) }) => {
//!         assert_eq!((channel, p.data.as_slice()), (ch, &b"hi"[..]));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert!(inbox.is_empty());
//! ```

use std::collections::{HashMap, HashSet, VecDeque};

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::presence::Presence;
use xmpp_parsers::stanza::Stanza;

use crate::error::{JoinError, SendError};
use crate::inbox::{inbox, ConnectionEvent, Delivery, Inbox, InboxWriter, Payload, QueueLimits};
use crate::wire::muc::{self, RemovalReason, RoomPresence};
use crate::wire::share::SharedAppFrame;
use crate::wire::update::UpdateFrame;
use crate::wire::upload::{Slot, UploadService};
use crate::wire::{self, ChatKind, ErrorCondition, WireError, MAX_PAYLOAD};

/// Most engine events kept for [`Engine::poll_event`].
const MAX_QUEUED_EVENTS: usize = 1024;

/// How many times in a row a room may refuse our re-entry for a reason
/// that may pass (see [`RemovalReason::refusal_is_decision`]) before the
/// refusal counts as final and the room's channels are told.
pub const REENTRY_ATTEMPTS: u32 = 5;

mod reentry;
mod share;
mod updates;

pub use reentry::{ReentryWatch, REENTRY_ANSWER_WAIT};
pub use share::UploadQuery;
pub use updates::{ArchiveOutcome, ArchiveQuery, MAX_ARCHIVE_PAGES};

/// A conversation that realtime channels live in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Chat {
    /// A multi-user chat room (XEP-0045), by its bare JID.
    Group(BareJid),
    /// A 1:1 chat with a contact, by the contact's bare JID.
    Direct(BareJid),
}

impl Chat {
    fn jid(&self) -> &BareJid {
        match self {
            Chat::Group(j) | Chat::Direct(j) => j,
        }
    }
    fn kind(&self) -> ChatKind {
        match self {
            Chat::Group(_) => ChatKind::Group,
            Chat::Direct(_) => ChatKind::Direct,
        }
    }
}

/// Identifies one joined channel inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(u64);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Limits of each channel's receive queue.
    pub queue: QueueLimits,
    /// How many of our own recent stanza ids are remembered to recognise
    /// the room's reflection of our frames (besides our occupant nick).
    pub echo_memory: usize,
    /// Put before the id of every group frame we send (empty: none). The
    /// library's client sets a random one of its own, which lets it drop
    /// the room's reflection of our frames before they are parsed (see
    /// `client::Guard`); an embedder with its own stream can do the same.
    pub frame_id_prefix: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue: QueueLimits::default(),
            echo_memory: 4096,
            frame_id_prefix: String::new(),
        }
    }
}

/// Where a room stands for this engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomState {
    /// Join presence sent (or to be sent when online), no answer yet.
    Joining,
    /// The room confirmed our presence (status 110): frames flow.
    Joined,
    /// The room refused us or removed us.
    NotJoined,
}

/// Something the embedding code may want to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// The room confirmed our join.
    RoomJoined {
        /// The room.
        room: BareJid,
        /// The nick the room gave us (it may differ from the one asked for).
        nick: String,
    },
    /// The room refused our join.
    RoomJoinFailed {
        /// The room.
        room: BareJid,
        /// Why (banned, members-only, nick taken, …).
        condition: ErrorCondition,
    },
    /// The room removed us (kick, ban, destruction, shutdown) or confirmed
    /// our own leave.
    RoomLeft {
        /// The room.
        room: BareJid,
        /// Why.
        reason: RemovalReason,
    },
    /// A valid frame arrived for an app instance that no channel here has
    /// joined (it was dropped). Lets a bot or a messenger discover the
    /// instances its peers use and join them.
    UnjoinedInstance {
        /// The chat the frame came from.
        chat: Chat,
        /// The app instance (thread).
        thread: String,
        /// Who sent it.
        from: Jid,
    },
    /// A status update arrived live in a chat (our own included: the room
    /// reflects it to us like to everyone).
    Update {
        /// The chat it came from.
        chat: Chat,
        /// The update, its sender and its instance.
        frame: Box<UpdateFrame>,
    },
    /// A status update from a room's archive, answering
    /// [`Engine::query_archive`].
    ArchivedUpdate {
        /// The query it answers.
        query: ArchiveQuery,
        /// The room whose archive it comes from.
        room: BareJid,
        /// The update; `archive_id` is its id in the archive.
        frame: Box<UpdateFrame>,
    },
    /// An archive query ended; no more [`ArchivedUpdate`](Self::ArchivedUpdate)
    /// follow for it.
    ArchiveEnd {
        /// The query.
        query: ArchiveQuery,
        /// The room.
        room: BareJid,
        /// How it ended.
        outcome: ArchiveOutcome,
    },
    /// An app was shared into a chat (live; our own share included, as the
    /// room reflects it).
    AppShared {
        /// The chat it was shared into.
        chat: Chat,
        /// The app, its instance (thread) and who shared it.
        frame: Box<SharedAppFrame>,
    },
    /// An app shared earlier, read from a room's archive, answering
    /// [`Engine::query_archive`].
    ArchivedApp {
        /// The query it answers.
        query: ArchiveQuery,
        /// The room.
        room: BareJid,
        /// The app, its instance (thread) and who shared it.
        frame: Box<SharedAppFrame>,
    },
    /// The answer to [`Engine::find_upload_service`]: the service, none
    /// (`Ok(None)`), or why the server could not say.
    UploadService {
        /// The exchange.
        query: UploadQuery,
        /// What was found.
        service: Result<Option<UploadService>, ErrorCondition>,
    },
    /// The answer to [`Engine::request_upload_slot`].
    UploadSlot {
        /// The exchange.
        query: UploadQuery,
        /// The slot, or why the service refused it.
        slot: Result<Slot, ErrorCondition>,
    },
    /// One of our frames (or a message to this chat) bounced with an error.
    SendBounced {
        /// The chat the bounce came from.
        chat: Chat,
        /// The XMPP error condition.
        condition: ErrorCondition,
    },
}

/// What [`Engine::poll`] hands out.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// A stanza to send on the XMPP stream, in this order.
    Transmit(Box<Stanza>),
    /// Something about a room or an app instance.
    Event(EngineEvent),
    /// A delivery for one channel, taken from its inbox.
    Delivery {
        /// The channel it belongs to.
        channel: ChannelId,
        /// The delivery.
        delivery: Delivery,
    },
}

/// Makes the `id` of each stanza the engine sends (also its XEP-0359
/// origin id, by which the engine recognises its own reflection).
pub type StanzaIds = Box<dyn FnMut() -> String + Send>;

fn random_stanza_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether a payload of `stanza` nests deeper than
/// [`wire::frame::MAX_DEPTH`] (the stanza itself being level 1).
fn has_deep_payload(stanza: &Stanza) -> bool {
    use xmpp_parsers::iq::Iq;
    let deep = |p: &Element| wire::frame::too_deep(p, 2);
    match stanza {
        Stanza::Message(m) => m.payloads.iter().any(deep),
        Stanza::Presence(p) => p.payloads.iter().any(deep),
        Stanza::Iq(Iq::Get { payload, .. } | Iq::Set { payload, .. }) => deep(payload),
        Stanza::Iq(Iq::Result { payload, .. } | Iq::Error { payload, .. }) => {
            payload.as_ref().is_some_and(deep)
        }
    }
}

/// Drops `stanza` without recursing into its payloads.
fn dismantle_stanza(stanza: Stanza) {
    use xmpp_parsers::iq::Iq;
    let payloads = match stanza {
        Stanza::Message(m) => m.payloads,
        Stanza::Presence(p) => p.payloads,
        Stanza::Iq(Iq::Get { payload, .. } | Iq::Set { payload, .. }) => vec![payload],
        Stanza::Iq(Iq::Result { payload, .. } | Iq::Error { payload, .. }) => {
            payload.into_iter().collect()
        }
    };
    for p in payloads {
        wire::frame::dismantle(p);
    }
}

/// What [`Engine::handle_element`] did with a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handled {
    /// A payload was queued for this channel.
    Delivered(ChannelId),
    /// The room's reflection of our own frame: dropped.
    Echo,
    /// A valid frame for a chat and instance nobody here joined: dropped.
    NoChannel,
    /// Not a realtime frame (presence, chat message, …): the engine updated
    /// its room state if it concerned a room, and otherwise ignored it.
    NotRealtime,
    /// A status update (live or archived) was reported as an
    /// [`EngineEvent`].
    Update,
    /// A frame that must not be delivered.
    Rejected(Rejection),
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The stanza claimed to be a frame but is malformed.
    Malformed(WireError),
    /// The XML text could not be parsed.
    UnparsableXml(String),
    /// The sender is not the chat the frame claims to belong to (another
    /// room, a non-occupant, a private message from a room occupant, a
    /// group frame from a contact).
    NotFromChat,
    /// The frame came from a room we are not (yet) joined to.
    RoomNotJoined,
    /// The stanza is addressed to someone else.
    WrongAddressee,
}

struct Room {
    nick: String,
    /// What the room's last presence for us said (while joined).
    occupant: Option<muc::SelfOccupant>,
    state: RoomState,
    /// Entered again at the next new session. False once the room removed
    /// us by a decision of its own (see [`RemovalReason::is_decision`]).
    rejoin: bool,
    /// We have been in the room (so a refusal is of a re-entry, which
    /// channels are told about, not of the first join, which `group()`
    /// answers).
    entered: bool,
    /// Re-entries refused (or unanswered) in a row for a reason that may
    /// pass.
    refused_reentries: u32,
    /// Counts the join presences sent, so that a [`ReentryWatch`] knows
    /// whether its re-entry is still the latest.
    attempt: u64,
    /// The channels were told the room lost us (a bounce said so) and
    /// hear [`ConnectionEvent::Reconnected`] when it takes us back.
    told_gone: bool,
}

struct Entry {
    chat: Chat,
    thread: String,
    inbox: InboxWriter,
}

/// The realtime contract's state machine. See the [module docs](self).
pub struct Engine {
    config: EngineConfig,
    own: Option<FullJid>,
    online: bool,
    was_online: bool,
    rooms: HashMap<BareJid, Room>,
    channels: HashMap<ChannelId, Entry>,
    keys: HashMap<(Chat, String), ChannelId>,
    recent_ids: VecDeque<String>,
    recent_set: HashSet<String>,
    transmit: VecDeque<Stanza>,
    events: VecDeque<EngineEvent>,
    /// Channels with deliveries not yet taken through [`Engine::poll`], in
    /// the order they became readable; at most one entry per channel.
    readable: VecDeque<ChannelId>,
    readable_set: HashSet<ChannelId>,
    next_id: u64,
    stanza_ids: StanzaIds,
    /// Archive queries waiting for their next page.
    queries: Vec<updates::PendingQuery>,
    /// Upload service discoveries and slot requests under way.
    uploads: Vec<share::PendingUpload>,
    /// Re-entries waiting for the embedder to time them (at most one per
    /// room); see [`Engine::poll_reentry_watch`].
    watches: Vec<ReentryWatch>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("own", &self.own)
            .field("online", &self.online)
            .field("rooms", &self.rooms.len())
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A new engine, offline, with no rooms and no channels; stanza ids
    /// are random UUIDs.
    pub fn new(config: EngineConfig) -> Self {
        Self::with_stanza_ids(config, Box::new(random_stanza_id))
    }

    /// A new engine whose stanza ids come from `ids` (for deterministic
    /// tests and simulations). Ids must be unique: a repeated id would make
    /// a peer's frame look like our own echo.
    pub fn with_stanza_ids(config: EngineConfig, ids: StanzaIds) -> Self {
        Engine {
            config,
            own: None,
            online: false,
            was_online: false,
            rooms: HashMap::new(),
            channels: HashMap::new(),
            keys: HashMap::new(),
            recent_ids: VecDeque::new(),
            recent_set: HashSet::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            readable: VecDeque::new(),
            readable_set: HashSet::new(),
            next_id: 0,
            stanza_ids: ids,
            queries: Vec::new(),
            uploads: Vec::new(),
            watches: Vec::new(),
        }
    }

    // ----- connection -----

    /// The stream is up and bound to `own`. When `resumed` is false this is
    /// a new session: the server forgot our room presences, so every room
    /// is joined again. Channels are told about a reconnection (not about
    /// the first connection).
    pub fn set_online(&mut self, own: FullJid, resumed: bool) {
        self.own = Some(own);
        self.online = true;
        if !resumed {
            let rooms: Vec<BareJid> = self
                .rooms
                .iter()
                .filter(|(_, r)| r.rejoin)
                .map(|(j, _)| j.clone())
                .collect();
            for room in rooms {
                self.send_join_presence(&room);
            }
        } else {
            // A re-entry sent before the stream went down may still be
            // answered by the resumed session; time it again.
            let joining: Vec<BareJid> = self
                .rooms
                .iter()
                .filter(|(_, r)| r.state == RoomState::Joining)
                .map(|(j, _)| j.clone())
                .collect();
            for room in joining {
                self.watch_reentry(&room);
            }
        }
        if self.was_online {
            // The channels hear of the reconnection now, which also ends
            // a room's own "lost us" notice.
            for r in self.rooms.values_mut() {
                r.told_gone = false;
            }
            self.broadcast(Delivery::Connection(ConnectionEvent::Reconnected {
                resumed,
            }));
        }
        self.was_online = true;
    }

    /// The stream is down. Sends fail with [`SendError::Disconnected`] until
    /// [`set_online`](Self::set_online); every channel is told.
    pub fn set_offline(&mut self) {
        if self.online {
            self.online = false;
            self.broadcast(Delivery::Connection(ConnectionEvent::Disconnected));
            // Their answers went down with the stream.
            self.end_all_queries(ArchiveOutcome::Interrupted);
            self.end_all_uploads();
        }
    }

    /// Whether the engine has been online at least once.
    pub fn was_ever_online(&self) -> bool {
        self.was_online
    }

    /// Ends every channel (their inboxes end) and forgets every room,
    /// without sending anything: for a client that is shutting down, whose
    /// unavailable presence takes it out of all rooms at once.
    pub fn close_all(&mut self) {
        for (_, e) in self.channels.drain() {
            e.inbox.close();
        }
        self.keys.clear();
        self.rooms.clear();
        self.transmit.clear();
        self.readable.clear();
        self.readable_set.clear();
        self.queries.clear();
    }

    /// Whether the engine believes the stream is up.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Our own full JID, once online.
    pub fn own_jid(&self) -> Option<&FullJid> {
        self.own.as_ref()
    }

    fn broadcast(&mut self, d: Delivery) {
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for id in ids {
            self.deliver(id, d.clone());
        }
    }

    /// Queues `d` in the channel's inbox and marks it readable for
    /// [`poll`](Self::poll).
    fn deliver(&mut self, id: ChannelId, d: Delivery) {
        let Some(e) = self.channels.get(&id) else {
            return;
        };
        e.inbox.push(d);
        if self.readable_set.insert(id) {
            self.readable.push_back(id);
        }
    }

    // ----- rooms -----

    /// Enters `room` as `nick`: queues the join presence (asking for no
    /// history, so nothing older than the join is ever replayed) now or
    /// when the engine comes online. [`EngineEvent::RoomJoined`] follows.
    ///
    /// Each device must use its own nick: frames from our own occupant JID
    /// are treated as our echo, so a nick shared by two devices would hide
    /// their frames from each other.
    pub fn join_room(&mut self, room: BareJid, nick: &str) {
        if let Some(r) = self.rooms.get(&room) {
            if r.state != RoomState::NotJoined {
                return;
            }
        }
        self.rooms.insert(
            room.clone(),
            Room {
                nick: nick.to_owned(),
                occupant: None,
                state: RoomState::Joining,
                rejoin: true,
                entered: false,
                refused_reentries: 0,
                attempt: 0,
                told_gone: false,
            },
        );
        if self.online {
            self.send_join_presence(&room);
        }
    }

    /// Registers a room that the embedding messenger has already joined as
    /// `nick`, without sending anything.
    pub fn adopt_room(&mut self, room: BareJid, nick: &str) {
        self.rooms.insert(
            room,
            Room {
                nick: nick.to_owned(),
                occupant: None,
                state: RoomState::Joined,
                rejoin: true,
                entered: true,
                refused_reentries: 0,
                attempt: 0,
                told_gone: false,
            },
        );
    }

    /// Leaves `room`: sends unavailable presence and ends all its channels.
    pub fn leave_room(&mut self, room: &BareJid) {
        let Some(r) = self.rooms.remove(room) else {
            return;
        };
        if self.online {
            if let Some(p) = muc::leave_presence(room, &r.nick) {
                self.transmit.push_back(Stanza::Presence(p));
            }
        }
        for id in self.room_channels(room) {
            self.leave(id);
        }
    }

    /// The channels of `room`.
    fn room_channels(&self, room: &BareJid) -> Vec<ChannelId> {
        let chat = Chat::Group(room.clone());
        self.channels
            .iter()
            .filter(|(_, e)| e.chat == chat)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many re-entries of `room` in a row were refused for a reason
    /// that may pass, while the engine still means to enter it: then
    /// [`retry_reentry`](Self::retry_reentry) should be called after a
    /// delay that grows with the count (the client's task waits 1, 2, 4,
    /// … s). `None` when nothing is to be retried.
    pub fn reentry_refused(&self, room: &BareJid) -> Option<u32> {
        self.rooms
            .get(room)
            .filter(|r| r.state == RoomState::NotJoined && r.rejoin && r.refused_reentries > 0)
            .map(|r| r.refused_reentries)
    }

    /// Asks `room` again to let us back in after a refusal that may pass
    /// (see [`reentry_refused`](Self::reentry_refused)); nothing if that no
    /// longer applies or we are offline (a new session enters every room
    /// anyway).
    pub fn retry_reentry(&mut self, room: &BareJid) {
        if self.online && self.reentry_refused(room).is_some() {
            self.send_join_presence(room);
        }
    }

    /// Where `room` stands, if the engine knows it.
    pub fn room_state(&self, room: &BareJid) -> Option<RoomState> {
        self.rooms.get(room).map(|r| r.state)
    }

    /// Who we are in `room` (nick, occupant id, whether the room shows real
    /// JIDs), as its last presence for us said; `None` unless joined.
    pub fn self_occupant(&self, room: &BareJid) -> Option<&muc::SelfOccupant> {
        self.rooms
            .get(room)
            .filter(|r| r.state == RoomState::Joined)
            .and_then(|r| r.occupant.as_ref())
    }

    fn send_join_presence(&mut self, room: &BareJid) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.state = RoomState::Joining;
        r.attempt += 1;
        let Some(p) = muc::join_presence(room, &r.nick) else {
            r.state = RoomState::NotJoined;
            self.push_event(EngineEvent::RoomJoinFailed {
                room: room.clone(),
                condition: ErrorCondition::Other("jid-malformed".to_owned()),
            });
            return;
        };
        self.transmit.push_back(Stanza::Presence(p));
        self.watch_reentry(room);
    }

    // ----- channels -----

    /// Joins the app instance `thread` in `chat`: returns the channel id
    /// and the queue its deliveries arrive in.
    ///
    /// Fails with [`JoinError::AlreadyJoined`] while an earlier channel for
    /// the same chat and instance has not been left.
    ///
    /// Nothing is replayed: the room is entered without history, and the
    /// channel receives what arrives after this call. A frame that a peer
    /// sent just before and that is still on its way to this device when
    /// the channel is joined is delivered; XMPP carries no send time that
    /// would tell it apart, and the spec's "ephemeral" concerns replay.
    pub fn join(&mut self, chat: Chat, thread: &str) -> Result<(ChannelId, Inbox), JoinError> {
        wire::validate_thread(thread).map_err(JoinError::thread)?;
        let key = (chat.clone(), thread.to_owned());
        if self.keys.contains_key(&key) {
            return Err(JoinError::AlreadyJoined);
        }
        self.next_id += 1;
        let id = ChannelId(self.next_id);
        let (writer, reader) = inbox(self.config.queue);
        self.keys.insert(key, id);
        self.channels.insert(
            id,
            Entry {
                chat,
                thread: thread.to_owned(),
                inbox: writer,
            },
        );
        Ok((id, reader))
    }

    /// Leaves a channel: delivery stops at once (queued deliveries are
    /// discarded and its inbox ends). Returns false if it was already left;
    /// leaving twice is harmless.
    pub fn leave(&mut self, id: ChannelId) -> bool {
        let Some(e) = self.channels.remove(&id) else {
            return false;
        };
        if self.readable_set.remove(&id) {
            self.readable.retain(|r| *r != id);
        }
        self.keys.remove(&(e.chat, e.thread));
        e.inbox.close();
        true
    }

    /// Whether `id` is a joined channel.
    pub fn is_joined(&self, id: ChannelId) -> bool {
        self.channels.contains_key(&id)
    }

    /// How many channels are joined.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The chat and instance of a joined channel.
    pub fn channel_info(&self, id: ChannelId) -> Option<(&Chat, &str)> {
        self.channels.get(&id).map(|e| (&e.chat, e.thread.as_str()))
    }

    /// Whether a payload of `len` bytes could be sent on channel `id` now,
    /// with the error [`send`](Self::send) would return. Checked in this
    /// order: the size limit, that the channel is joined, that we are
    /// online, that its room is joined.
    pub fn check_send(&self, id: ChannelId, len: usize) -> Result<(), SendError> {
        if len > MAX_PAYLOAD {
            return Err(SendError::TooLarge { size: len });
        }
        let entry = self.channels.get(&id).ok_or(SendError::Left)?;
        if !self.online {
            return Err(SendError::Disconnected);
        }
        if let Chat::Group(room) = &entry.chat {
            if self.rooms.get(room).map(|r| r.state) != Some(RoomState::Joined) {
                return Err(SendError::RoomNotJoined(room.clone()));
            }
        }
        Ok(())
    }

    /// Sends `data` to every other peer of the channel: queues one stanza
    /// for [`poll`](Self::poll), after the checks of
    /// [`check_send`](Self::check_send). Nothing is queued on error.
    pub fn send(&mut self, id: ChannelId, data: &[u8]) -> Result<(), SendError> {
        self.check_send(id, data.len())?;
        let Some(entry) = self.channels.get(&id) else {
            return Err(SendError::Left);
        };
        let mut stanza_id = (self.stanza_ids)();
        if matches!(entry.chat, Chat::Group(_)) && !self.config.frame_id_prefix.is_empty() {
            stanza_id.insert_str(0, &self.config.frame_id_prefix);
        }
        let msg = wire::encode(
            entry.chat.jid(),
            entry.chat.kind(),
            &entry.thread,
            data,
            &stanza_id,
        )
        .map_err(|e| match e {
            WireError::TooLarge { size } => SendError::TooLarge { size },
            // The thread was validated at join; nothing else can fail.
            _ => SendError::Left,
        })?;
        if matches!(entry.chat, Chat::Group(_)) {
            self.remember_id(stanza_id);
        }
        self.transmit.push_back(Stanza::Message(msg));
        Ok(())
    }

    fn remember_id(&mut self, id: String) {
        if self.config.echo_memory == 0 {
            return;
        }
        while self.recent_ids.len() >= self.config.echo_memory {
            if let Some(old) = self.recent_ids.pop_front() {
                self.recent_set.remove(&old);
            }
        }
        self.recent_set.insert(id.clone());
        self.recent_ids.push_back(id);
    }

    // ----- outputs -----

    /// The next thing to act on: a stanza to transmit first, then a room
    /// event, then a channel's delivery. Call it after every input until it
    /// returns `None`.
    ///
    /// Deliveries come out per channel in order; across channels, in the
    /// order the channels became readable. A delivery taken here is no
    /// longer in the channel's [`Inbox`] (and the other way round).
    pub fn poll(&mut self) -> Option<Output> {
        if let Some(s) = self.transmit.pop_front() {
            return Some(Output::Transmit(Box::new(s)));
        }
        if let Some(ev) = self.events.pop_front() {
            return Some(Output::Event(ev));
        }
        while let Some(id) = self.readable.pop_front() {
            self.readable_set.remove(&id);
            let Some(e) = self.channels.get(&id) else {
                continue;
            };
            // Empty when the application already read it through its inbox.
            let Some(delivery) = e.inbox.take() else {
                continue;
            };
            if !e.inbox.is_empty() && self.readable_set.insert(id) {
                self.readable.push_back(id);
            }
            return Some(Output::Delivery {
                channel: id,
                delivery,
            });
        }
        None
    }

    /// The next stanza to send, as a typed stanza (the transmit part of
    /// [`poll`](Self::poll)).
    pub fn poll_transmit_stanza(&mut self) -> Option<Stanza> {
        self.transmit.pop_front()
    }

    /// The next stanza to send, as an element.
    pub fn poll_transmit(&mut self) -> Option<Element> {
        self.transmit.pop_front().map(|s| match s {
            Stanza::Message(m) => Element::from(m),
            Stanza::Presence(p) => Element::from(p),
            Stanza::Iq(iq) => Element::from(iq),
        })
    }

    /// How many stanzas wait to be transmitted.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }

    /// The next room event (the event part of [`poll`](Self::poll)).
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    // ----- inputs -----

    /// Handles one incoming stanza given as XML text: parses it and calls
    /// [`handle_element`](Self::handle_element).
    pub fn handle_xml(&mut self, xml: &str) -> Handled {
        // Deep text is refused before the parser spends time on it.
        if wire::frame::text_too_deep(xml) {
            return Handled::Rejected(Rejection::Malformed(WireError::TooDeep));
        }
        match xml.parse::<Element>() {
            // Parsing does not recurse, dropping does: a deep element is
            // taken apart iteratively (see [`wire::frame::MAX_DEPTH`]).
            Ok(el) if wire::frame::too_deep(&el, 1) => {
                wire::frame::dismantle(el);
                Handled::Rejected(Rejection::Malformed(WireError::TooDeep))
            }
            Ok(el) => self.handle_element(&el),
            Err(e) => Handled::Rejected(Rejection::UnparsableXml(e.to_string())),
        }
    }

    /// Handles one incoming stanza given as an element: reads it into its
    /// typed form and calls [`handle_stanza`](Self::handle_stanza).
    pub fn handle_element(&mut self, el: &Element) -> Handled {
        // Before the typed parsers, which recurse once per level.
        if wire::frame::too_deep(el, 1) {
            return Handled::Rejected(Rejection::Malformed(WireError::TooDeep));
        }
        match el.name() {
            "message" => match wire::frame::parse_message(el) {
                Ok(m) => self.handle_stanza(Stanza::Message(m)),
                Err(e) => Handled::Rejected(Rejection::Malformed(e)),
            },
            // A presence we cannot read cannot be about a room we are in.
            "presence" => match Presence::try_from(el.clone()) {
                Ok(p) => self.handle_stanza(Stanza::Presence(p)),
                Err(_) => Handled::NotRealtime,
            },
            _ => Handled::NotRealtime,
        }
    }

    /// Handles one incoming stanza, the engine's one input: room presences
    /// update room state, realtime frames are checked and delivered, error
    /// bounces become events, everything else is ignored.
    pub fn handle_stanza(&mut self, stanza: Stanza) -> Handled {
        // Payloads are kept as elements by the typed stanza; reading them
        // (an archive result, an upload answer) recurses once per level.
        if has_deep_payload(&stanza) {
            dismantle_stanza(stanza);
            return Handled::Rejected(Rejection::Malformed(WireError::TooDeep));
        }
        let handled = match &stanza {
            Stanza::Message(m) => self.handle_message(m),
            Stanza::Presence(p) => {
                self.handle_presence(p);
                Handled::NotRealtime
            }
            Stanza::Iq(iq) => {
                if !self.handle_upload_iq(iq) {
                    self.handle_iq(iq);
                }
                Handled::NotRealtime
            }
        };
        tracing::trace!(?handled, "stanza handled");
        handled
    }

    fn handle_message(&mut self, m: &Message) -> Handled {
        // The server routes to us only what is addressed to our account; a
        // `to` naming anyone else is a forgery or a routing bug.
        // Compared part by part: `to_bare` builds two new JIDs per stanza.
        if let (Some(own), Some(to)) = (&self.own, &m.to) {
            if to.node() != own.node() || to.domain() != own.domain() {
                return Handled::Rejected(Rejection::WrongAddressee);
            }
        }
        match wire::decode_message(m) {
            Ok(Some(frame)) => self.route(frame),
            Ok(None) if m.type_ != MessageType::Error => self.handle_other_message(m),
            Ok(None) => {
                if m.type_ == MessageType::Error {
                    self.note_bounce(
                        m.from.as_ref(),
                        ErrorCondition::of_payloads(&m.payloads),
                        false,
                    );
                }
                Handled::NotRealtime
            }
            Err(WireError::ErrorBounce { from, condition }) => {
                self.note_bounce(from.as_ref(), condition.clone(), true);
                Handled::Rejected(Rejection::Malformed(WireError::ErrorBounce {
                    from: None,
                    condition,
                }))
            }
            Err(e) => Handled::Rejected(Rejection::Malformed(e)),
        }
    }

    /// Reports a bounce from a room we know; a bounce of one of our frames
    /// (`frame`) is reported for a 1:1 chat too.
    fn note_bounce(&mut self, from: Option<&Jid>, condition: ErrorCondition, frame: bool) {
        let Some(from) = from else {
            return;
        };
        let bare = from.to_bare();
        let chat = if self.rooms.contains_key(&bare) {
            Chat::Group(bare)
        } else if frame {
            Chat::Direct(bare)
        } else {
            return;
        };
        // From the room itself (not an occupant): a groupchat message of
        // ours bounced; it may say that the room no longer has us.
        let from_room = match &chat {
            Chat::Group(room) if from.resource().is_none() => Some(room.clone()),
            _ => None,
        };
        self.push_event(EngineEvent::SendBounced {
            chat,
            condition: condition.clone(),
        });
        if let Some(room) = from_room {
            self.bounced_from_room(&room, &condition);
        }
    }

    /// Privacy, echo and instance checks of a decoded frame, then delivery.
    fn route(&mut self, frame: wire::Frame) -> Handled {
        let bare = frame.from.to_bare();
        let chat = match frame.kind {
            ChatKind::Group => {
                let Some(room) = self.rooms.get(&bare) else {
                    return Handled::Rejected(Rejection::NotFromChat);
                };
                let Some(nick) = frame.from.resource() else {
                    // The room itself (no occupant) never sends frames.
                    return Handled::Rejected(Rejection::NotFromChat);
                };
                if room.state != RoomState::Joined {
                    return Handled::Rejected(Rejection::RoomNotJoined);
                }
                // The room reflects every groupchat message to its sender.
                if nick.as_str() == room.nick
                    || frame
                        .origin_id
                        .as_ref()
                        .is_some_and(|id| self.recent_set.contains(id))
                {
                    return Handled::Echo;
                }
                Chat::Group(bare)
            }
            ChatKind::Direct => {
                // A private message through a room is not a 1:1 chat.
                if self.rooms.contains_key(&bare) {
                    return Handled::Rejected(Rejection::NotFromChat);
                }
                Chat::Direct(bare)
            }
        };
        let key = (chat, frame.thread);
        let Some(&id) = self.keys.get(&key) else {
            let (chat, thread) = key;
            self.push_event(EngineEvent::UnjoinedInstance {
                chat,
                thread,
                from: frame.from,
            });
            return Handled::NoChannel;
        };
        self.deliver(
            id,
            Delivery::Payload(Payload {
                data: frame.data,
                from: frame.from,
            }),
        );
        Handled::Delivered(id)
    }

    /// Queues an event; the oldest is dropped when nobody drains them, so
    /// an embedder that ignores events does not grow memory without bound.
    fn push_event(&mut self, ev: EngineEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(ev);
    }

    fn handle_presence(&mut self, p: &Presence) {
        let Some((room_jid, what)) = muc::read_presence(p) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_jid) else {
            return;
        };
        let event = match what {
            RoomPresence::Refused(condition) => {
                if room.state != RoomState::Joining {
                    return;
                }
                room.state = RoomState::NotJoined;
                // A re-entry refused for a reason that may pass (the room
                // service restarting after the server did) is asked again
                // after a while: the client's task does that
                // (`retry_reentry`, when `reentry_refused` says so).
                if room.entered
                    && !RemovalReason::refusal_is_decision(&condition)
                    && room.refused_reentries + 1 < REENTRY_ATTEMPTS
                {
                    room.refused_reentries += 1;
                    self.push_event(EngineEvent::RoomJoinFailed {
                        room: room_jid,
                        condition,
                    });
                    return;
                }
                // Otherwise a refused re-entry (after a reconnection, or a
                // kick) is the room's decision: not tried again by itself,
                // and every channel of the room is told, as for a removal.
                // At the first join no channel exists yet: the waiting
                // `group()` gets the refusal.
                room.rejoin = false;
                room.told_gone = false;
                let reason = RemovalReason::of_refusal(&condition);
                for id in self.room_channels(&room_jid) {
                    self.deliver(id, Delivery::Removed(reason.clone()));
                }
                EngineEvent::RoomJoinFailed {
                    room: room_jid,
                    condition,
                }
            }
            RoomPresence::Joined(occupant) => {
                // The room may have rewritten our nick (status 210).
                room.nick = occupant.nick.clone();
                room.occupant = Some(occupant);
                room.entered = true;
                room.refused_reentries = 0;
                if room.state == RoomState::Joined {
                    return;
                }
                room.state = RoomState::Joined;
                let nick = room.nick.clone();
                self.tell_room_back(&room_jid);
                EngineEvent::RoomJoined {
                    room: room_jid,
                    nick,
                }
            }
            RoomPresence::Removed(reason) => {
                room.state = RoomState::NotJoined;
                room.occupant = None;
                room.rejoin = !reason.is_decision();
                if reason.is_decision() {
                    room.told_gone = false;
                    // Every channel of the room is told: nothing arrives
                    // and sends fail until the room is entered again.
                    for id in self.room_channels(&room_jid) {
                        self.deliver(id, Delivery::Removed(reason.clone()));
                    }
                } else if reason == RemovalReason::ServiceShutdown && self.online {
                    // A technical removal is transient, like a reconnection:
                    // enter again at once (a room service that restarted
                    // takes us back; a server that is stopping drops it).
                    self.send_join_presence(&room_jid);
                }
                EngineEvent::RoomLeft {
                    room: room_jid,
                    reason,
                }
            }
            RoomPresence::Other => return,
        };
        self.push_event(event);
    }
}
