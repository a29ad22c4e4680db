//! Status updates (XEP-0491) in the engine: sending them, reading live
//! ones, and reading a room's archive for the past ones.
//!
//! Updates are not part of the realtime contract: they are kept, they are
//! delivered to the sender too (the room reflects them), and the room's
//! archive is their store. The engine reports them as [`EngineEvent`]s;
//! the client sorts them per app instance.

use jid::{BareJid, Jid};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::message::Message;
use xmpp_parsers::stanza::Stanza;

use super::{Chat, Engine, EngineEvent, Handled, Rejection, RoomState};
use crate::error::UpdateError;
use crate::wire::mam::{self, PageEnd};
use crate::wire::update::{self, StatusUpdate};
use crate::wire::{ChatKind, ErrorCondition, WireError};

/// Most pages one archive query reads ([`mam::PAGE_SIZE`] messages each):
/// a bound on the work and memory a huge archive can cost.
pub const MAX_ARCHIVE_PAGES: usize = 100;

/// Most archive queries in flight at once.
const MAX_QUERIES: usize = 64;

/// Names one archive query (see [`Engine::query_archive`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchiveQuery(pub(crate) String);

/// How an archive query ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveOutcome {
    /// Every archived message was read.
    Complete,
    /// Stopped after [`MAX_ARCHIVE_PAGES`] pages; older updates were read,
    /// newer ones may be missing from the replay.
    Truncated {
        /// Pages read.
        pages: usize,
    },
    /// The room refused the query (no archive, or not allowed).
    Failed(ErrorCondition),
    /// The connection dropped before the archive answered.
    Interrupted,
}

pub(super) struct PendingQuery {
    id: ArchiveQuery,
    room: BareJid,
    /// The id of the iq that asks for the current page.
    iq_id: String,
    pages: usize,
}

impl Engine {
    /// Sends a status update for app instance `thread` into `chat`. It
    /// comes back to us too, as an [`EngineEvent::Update`], when the room
    /// reflects it.
    pub fn send_update(
        &mut self,
        chat: &Chat,
        thread: &str,
        update: &StatusUpdate,
    ) -> Result<(), UpdateError> {
        if !self.online {
            return Err(UpdateError::Disconnected);
        }
        if let Chat::Group(room) = chat {
            if self.room_state(room) != Some(RoomState::Joined) {
                return Err(UpdateError::RoomNotJoined(room.clone()));
            }
        }
        let id = (self.stanza_ids)();
        let kind = match chat {
            Chat::Group(_) => ChatKind::Group,
            Chat::Direct(_) => ChatKind::Direct,
        };
        let to = match chat {
            Chat::Group(j) | Chat::Direct(j) => j,
        };
        let msg = update::encode_update(to, kind, thread, update, &id)?;
        self.transmit.push_back(Stanza::Message(msg));
        Ok(())
    }

    /// Asks `room`'s archive for every status update it keeps, oldest
    /// first. They arrive as [`EngineEvent::ArchivedUpdate`]s (pages are
    /// asked for one after the other by the engine) and end with one
    /// [`EngineEvent::ArchiveEnd`].
    pub fn query_archive(&mut self, room: &BareJid) -> Result<ArchiveQuery, UpdateError> {
        if !self.online {
            return Err(UpdateError::Disconnected);
        }
        if self.room_state(room) != Some(RoomState::Joined) {
            return Err(UpdateError::RoomNotJoined(room.clone()));
        }
        if self.queries.len() >= MAX_QUERIES {
            return Err(UpdateError::Busy);
        }
        let id = ArchiveQuery((self.stanza_ids)());
        self.transmit
            .push_back(Stanza::Iq(mam::query(room, &id.0, None)));
        self.queries.push(PendingQuery {
            id: id.clone(),
            room: room.clone(),
            iq_id: id.0.clone(),
            pages: 0,
        });
        Ok(id)
    }

    /// A message that is not a realtime frame: an archive result or a live
    /// status update, or something else.
    pub(super) fn handle_other_message(&mut self, m: &Message) -> Handled {
        if let Some(archived) = mam::read_result(m) {
            return self.handle_archived(archived);
        }
        if let Ok(Some(frame)) = crate::wire::share::decode_share(m) {
            let Some(chat) = self.update_chat(&frame.from, frame.kind) else {
                return Handled::Rejected(Rejection::NotFromChat);
            };
            self.push_event(EngineEvent::AppShared {
                chat,
                frame: Box::new(frame),
            });
            return Handled::Update;
        }
        match update::decode_update(m) {
            Ok(Some(frame)) => {
                let Some(chat) = self.update_chat(&frame.from, frame.kind) else {
                    return Handled::Rejected(Rejection::NotFromChat);
                };
                self.push_event(EngineEvent::Update {
                    chat,
                    frame: Box::new(frame),
                });
                Handled::Update
            }
            Ok(None) => Handled::NotRealtime,
            Err(e) => Handled::Rejected(Rejection::Malformed(e)),
        }
    }

    /// The chat a live update belongs to, if its sender may speak for it:
    /// an occupant of a room we are in, or a contact (not a room).
    fn update_chat(&self, from: &Jid, kind: ChatKind) -> Option<Chat> {
        let bare = from.to_bare();
        match kind {
            ChatKind::Group => {
                from.resource()?;
                (self.room_state(&bare) == Some(RoomState::Joined)).then_some(Chat::Group(bare))
            }
            ChatKind::Direct => (!self.rooms.contains_key(&bare)).then_some(Chat::Direct(bare)),
        }
    }

    fn handle_archived(&mut self, archived: mam::ArchivedMessage) -> Handled {
        // Only the room we asked, answering a query we made.
        let Some(q) = self
            .queries
            .iter()
            .find(|q| q.id.0 == archived.query_id && q.room == archived.archive)
        else {
            return Handled::Rejected(Rejection::NotFromChat);
        };
        let (query, room) = (q.id.clone(), q.room.clone());
        if let Ok(Some(frame)) = crate::wire::share::decode_share(&archived.message) {
            if frame.kind != ChatKind::Group
                || frame.from.to_bare() != room
                || frame.from.resource().is_none()
            {
                return Handled::Rejected(Rejection::NotFromChat);
            }
            self.push_event(EngineEvent::ArchivedApp {
                query,
                room,
                frame: Box::new(frame),
            });
            return Handled::Update;
        }
        match update::decode_update(&archived.message) {
            Ok(Some(mut frame)) => {
                // The archive keeps what its occupants said, nothing else.
                if frame.kind != ChatKind::Group
                    || frame.from.to_bare() != room
                    || frame.from.resource().is_none()
                {
                    return Handled::Rejected(Rejection::NotFromChat);
                }
                frame.archive_id = Some(archived.archive_id);
                self.push_event(EngineEvent::ArchivedUpdate {
                    query,
                    room,
                    frame: Box::new(frame),
                });
                Handled::Update
            }
            // Chat messages and anything else the room archived.
            Ok(None) => Handled::NotRealtime,
            Err(e) => Handled::Rejected(Rejection::Malformed(e)),
        }
    }

    /// The end of an archive page: ask for the next one, or report the end.
    pub(super) fn handle_iq(&mut self, iq: &Iq) {
        let Some(pos) = self.queries.iter().position(
            |q| matches!(mam::read_end(iq, &q.iq_id), Some((Some(from), _)) if from == q.room),
        ) else {
            return;
        };
        let Some((_, end)) = mam::read_end(iq, &self.queries[pos].iq_id) else {
            return;
        };
        let mut q = self.queries.remove(pos);
        q.pages += 1;
        let outcome = match end {
            PageEnd::Complete => ArchiveOutcome::Complete,
            PageEnd::Failed(condition) => ArchiveOutcome::Failed(condition),
            PageEnd::More { .. } if q.pages >= MAX_ARCHIVE_PAGES => {
                ArchiveOutcome::Truncated { pages: q.pages }
            }
            PageEnd::More { last } => {
                q.iq_id = (self.stanza_ids)();
                let mut next = mam::query(&q.room, &q.id.0, Some(&last));
                if let Iq::Set { id, .. } = &mut next {
                    id.clone_from(&q.iq_id);
                }
                self.transmit.push_back(Stanza::Iq(next));
                self.queries.push(q);
                return;
            }
        };
        self.push_event(EngineEvent::ArchiveEnd {
            query: q.id,
            room: q.room,
            outcome,
        });
    }

    pub(super) fn end_all_queries(&mut self, outcome: ArchiveOutcome) {
        for q in std::mem::take(&mut self.queries) {
            self.push_event(EngineEvent::ArchiveEnd {
                query: q.id,
                room: q.room,
                outcome: outcome.clone(),
            });
        }
    }
}

impl From<WireError> for UpdateError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::TooLarge { size } => UpdateError::TooLarge { size },
            WireError::BadJson(e) => UpdateError::NotJson(e),
            WireError::InvalidThread | WireError::ThreadTooLong { .. } => UpdateError::thread(e),
            other => UpdateError::NotJson(other.to_string()),
        }
    }
}
