//! Entering a room again without waiting forever, and noticing that a room
//! no longer has us when it only says so by bouncing our messages.
//!
//! **Unanswered re-entries.** A re-entry (after a new session, a service
//! shutdown, a bounce below) may get no answer at all: in an ejabberd
//! cluster whose room node is stopping, the presence sent right after the
//! 332 is routed to the stopping room's process and lost without an error.
//! The engine has no clock, so it hands the embedder a [`ReentryWatch`]
//! for each re-entry it sends ([`Engine::poll_reentry_watch`]); the
//! embedder calls [`Engine::reentry_unanswered`] once
//! [`REENTRY_ANSWER_WAIT`] has passed. A watch whose re-entry was answered
//! meanwhile (or superseded by a later one) does nothing; otherwise the
//! silence counts like a refusal that may pass, asked again under the same
//! policy ([`Engine::reentry_refused`], [`REENTRY_ATTEMPTS`](super::REENTRY_ATTEMPTS)),
//! and after the last attempt every channel of the room gets
//! [`Delivery::Removed`]`(`[`RemovalReason::NoAnswer`]`)`.
//!
//! **A room that forgot us.** A room whose node crashed vanishes without a
//! word to occupants on other nodes; their groupchat messages then bounce
//! from the room's bare JID with `item-not-found` (no such room) or, once
//! someone made the room again, `not-acceptable` (only occupants may send).
//! XEP-0410 (MUC self-ping) reads such errors as "no longer an occupant".
//! The engine then enters the room again, as after a reconnection, and
//! tells the room's channels as a reconnection does:
//! [`ConnectionEvent::Disconnected`] at once,
//! [`ConnectionEvent::Reconnected`] (`resumed: false`) when the room has
//! taken us back.

use std::time::Duration;

use jid::BareJid;

use super::{Engine, EngineEvent, RoomState, REENTRY_ATTEMPTS};
use crate::inbox::{ConnectionEvent, Delivery};
use crate::wire::muc::RemovalReason;
use crate::wire::ErrorCondition;

/// How long a re-entry may go unanswered before it counts as failed.
/// A room answers a join within milliseconds, a room service that is
/// still starting within a second or two; 10 s is far past both, yet short
/// enough that a member whose presence was lost (see the module docs) is
/// back in the room well within a user's patience.
pub const REENTRY_ANSWER_WAIT: Duration = Duration::from_secs(10);

/// One re-entry of a room that waits for the room's answer; see
/// [`Engine::poll_reentry_watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReentryWatch {
    room: BareJid,
    /// Which join presence of the room it watches (a later one supersedes
    /// it).
    attempt: u64,
}

impl ReentryWatch {
    /// The room being entered again.
    pub fn room(&self) -> &BareJid {
        &self.room
    }
}

impl Engine {
    /// The next re-entry the engine sent whose answer it waits for: call
    /// [`reentry_unanswered`](Self::reentry_unanswered) with it after
    /// [`REENTRY_ANSWER_WAIT`]. Like [`poll`](Self::poll), call it after
    /// inputs until it returns `None`. At most one watch per room waits
    /// here (a newer re-entry replaces the older watch), so an embedder
    /// that never asks costs no memory beyond that.
    pub fn poll_reentry_watch(&mut self) -> Option<ReentryWatch> {
        if self.watches.is_empty() {
            None
        } else {
            Some(self.watches.remove(0))
        }
    }

    /// [`REENTRY_ANSWER_WAIT`] has passed since `watch` was handed out.
    /// If its re-entry is still unanswered (and no later one was sent),
    /// it counts as failed: returns true when it is to be asked again, as
    /// after a refusal that may pass ([`reentry_refused`](Self::reentry_refused)
    /// counts it; [`retry_reentry`](Self::retry_reentry) sends it). After
    /// [`REENTRY_ATTEMPTS`] failures in a row, the room's channels get
    /// [`Delivery::Removed`]`(`[`RemovalReason::NoAnswer`]`)`, an
    /// [`EngineEvent::RoomLeft`] follows and the room is not entered
    /// again by itself. Offline nothing happens: a new session enters
    /// every room again, a resumed one hands out new watches.
    pub fn reentry_unanswered(&mut self, watch: &ReentryWatch) -> bool {
        if !self.online {
            return false;
        }
        let Some(room) = self.rooms.get_mut(&watch.room) else {
            return false;
        };
        if room.attempt != watch.attempt
            || room.state != RoomState::Joining
            || !room.entered
            || !room.rejoin
        {
            return false;
        }
        room.state = RoomState::NotJoined;
        if room.refused_reentries + 1 < REENTRY_ATTEMPTS {
            room.refused_reentries += 1;
            return true;
        }
        room.rejoin = false;
        room.told_gone = false;
        let reason = RemovalReason::NoAnswer;
        for id in self.room_channels(&watch.room) {
            self.deliver(id, Delivery::Removed(reason.clone()));
        }
        self.push_event(EngineEvent::RoomLeft {
            room: watch.room.clone(),
            reason,
        });
        false
    }

    /// Hands out a watch for the join presence just queued for `room`, if
    /// it is a re-entry (a first join is answered to the application that
    /// asked for it).
    pub(super) fn watch_reentry(&mut self, room: &BareJid) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        if !r.entered {
            return;
        }
        let watch = ReentryWatch {
            room: room.clone(),
            attempt: r.attempt,
        };
        self.watches.retain(|w| &w.room != room);
        self.watches.push(watch);
    }

    /// A message of ours bounced from `room` (its bare JID) with
    /// `condition`: if that says we are no longer an occupant, enter again.
    ///
    /// `not-acceptable` and `item-not-found` say so (XEP-0410). Not
    /// `service-unavailable`, which XEP-0410 reads as "still joined" (it
    /// is what a room answers for a feature it lacks) and which servers
    /// also use for a room that is full or a service that is off: entering
    /// again on it could loop against a room that keeps us. Nor the
    /// room's decisions (`forbidden`: a visitor in a moderated room is
    /// still in it) or an unreachable remote server (no decision can be
    /// made, says XEP-0410; the reconnection logic handles our own
    /// server).
    pub(super) fn bounced_from_room(&mut self, room_jid: &BareJid, condition: &ErrorCondition) {
        if !matches!(
            condition,
            ErrorCondition::NotAcceptable | ErrorCondition::ItemNotFound
        ) || !self.online
        {
            return;
        }
        let Some(room) = self.rooms.get_mut(room_jid) else {
            return;
        };
        // While joining, the answer is on its way (bounces of frames sent
        // before the re-entry arrive before it); not joined, nothing to do.
        if room.state != RoomState::Joined {
            return;
        }
        tracing::debug!(room = %room_jid, ?condition, "the room bounced our message: entering it again");
        room.occupant = None;
        room.told_gone = true;
        for id in self.room_channels(room_jid) {
            self.deliver(id, Delivery::Connection(ConnectionEvent::Disconnected));
        }
        self.send_join_presence(room_jid);
    }

    /// The room took us back: channels told by
    /// [`bounced_from_room`](Self::bounced_from_room) that it lost us hear
    /// that it is back.
    pub(super) fn tell_room_back(&mut self, room_jid: &BareJid) {
        let Some(room) = self.rooms.get_mut(room_jid) else {
            return;
        };
        if !std::mem::take(&mut room.told_gone) {
            return;
        }
        for id in self.room_channels(room_jid) {
            self.deliver(
                id,
                Delivery::Connection(ConnectionEvent::Reconnected { resumed: false }),
            );
        }
    }
}
