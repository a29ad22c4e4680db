//! The room side of the wire (XEP-0045): entering and leaving a room, and
//! reading what the room says about us.
//!
//! We enter with `<history maxstanzas='0'/>` so that nothing older than the
//! join is replayed (the channel is ephemeral), and we recognise our own
//! presence by status 110.

use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::muc::muc::{History, Muc};
use xmpp_parsers::muc::user::Status;
use xmpp_parsers::presence::{Presence, Type as PresenceType};

use super::ErrorCondition;

/// Namespace of the MUC user extension (`<x/>` in room presences).
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// Namespace of XEP-0421's `<occupant-id/>`: a stable id the room gives
/// each occupant (the same for all devices of one account).
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";

/// Who we are in a room, as its presence for us says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfOccupant {
    /// Our nick as the room knows it (it may have changed the one asked
    /// for).
    pub nick: String,
    /// The room's XEP-0421 occupant id for us, if it gives one.
    pub occupant_id: Option<String>,
    /// The room shows every occupant's real JID to everyone (status 100):
    /// a non-anonymous room. Otherwise other occupants know us by nick
    /// (and occupant id) only.
    pub non_anonymous: bool,
}

/// The presence that enters `room` as `nick`, asking for no history.
/// `None` when `nick` cannot be a resource.
pub fn join_presence(room: &BareJid, nick: &str) -> Option<Presence> {
    let to = room.with_resource_str(nick).ok()?;
    let muc = Muc::new().with_history(History::new().with_maxstanzas(0));
    Some(
        Presence::new(PresenceType::None)
            .with_to(to)
            .with_payloads(vec![muc.into()]),
    )
}

/// The presence that leaves `room`, where we are `nick`.
pub fn leave_presence(room: &BareJid, nick: &str) -> Option<Presence> {
    let to = room.with_resource_str(nick).ok()?;
    Some(Presence::new(PresenceType::Unavailable).with_to(to))
}

/// Why the room no longer has us.
///
/// The rejoin policy: a removal that is the room's decision
/// ([`is_decision`](Self::is_decision): kick, ban, affiliation,
/// members-only, destruction, and a refusal of the automatic re-entry
/// after a reconnection) is final: the room is not entered again by
/// itself, not even after a later reconnection, until the application
/// enters it again. The others (a service shutdown, an unexplained
/// removal) are entered again at once or at the next new session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalReason {
    /// Our own leave, confirmed (or a removal the room did not explain).
    Left,
    /// A moderator kicked us (status 307).
    Kicked,
    /// We were banned (status 301).
    Banned,
    /// Our affiliation changed and no longer allows us in (status 321).
    AffiliationChanged,
    /// The room became members-only and we are not a member (status 322).
    MembersOnly,
    /// The service is shutting down (status 332), or removed us after a
    /// technical problem (333; Prosody says so to every occupant when it
    /// stops).
    ServiceShutdown,
    /// The room was destroyed.
    Destroyed,
    /// Re-entering the room after a reconnection was refused because
    /// another occupant now has our nick (`conflict`). At join time the
    /// same refusal is [`GroupError::Refused`](crate::GroupError::Refused).
    NickTaken,
    /// Re-entering the room after a reconnection was refused for another
    /// reason (a ban is [`Banned`](Self::Banned), a members-only room
    /// [`MembersOnly`](Self::MembersOnly)).
    Refused(ErrorCondition),
    /// Re-entering the room got no answer, not even after the last retry
    /// ([`REENTRY_ANSWER_WAIT`](crate::engine::REENTRY_ANSWER_WAIT) each,
    /// [`REENTRY_ATTEMPTS`](crate::engine::REENTRY_ATTEMPTS) in all): the
    /// room or its service is unreachable. Like a refusal, the room is not
    /// entered again by itself.
    NoAnswer,
}

impl RemovalReason {
    /// Whether the room decided to remove us (then it is not re-entered
    /// by itself).
    pub fn is_decision(&self) -> bool {
        matches!(
            self,
            Self::Kicked
                | Self::Banned
                | Self::AffiliationChanged
                | Self::MembersOnly
                | Self::Destroyed
                | Self::NickTaken
                | Self::Refused(_)
                | Self::NoAnswer
        )
    }

    /// Whether a room's refusal with `condition` is its decision about us
    /// (banned, members-only, nick taken, password, not allowed): asking
    /// again cannot help. Anything else (`item-not-found`,
    /// `service-unavailable`, `resource-constraint`, an unreachable remote
    /// server, an internal error) may pass: a room service that is
    /// restarting or still loading answers that way.
    pub fn refusal_is_decision(condition: &ErrorCondition) -> bool {
        matches!(
            condition,
            ErrorCondition::Forbidden
                | ErrorCondition::RegistrationRequired
                | ErrorCondition::Conflict
                | ErrorCondition::NotAuthorized
                | ErrorCondition::NotAllowed
                | ErrorCondition::NotAcceptable
                | ErrorCondition::PolicyViolation
        )
    }

    /// Why the room no longer has us when it refuses our re-entry with
    /// `condition`: a ban and a members-only room by their names, a taken
    /// nick as [`NickTaken`](Self::NickTaken), anything else as it is.
    pub fn of_refusal(condition: &ErrorCondition) -> Self {
        match condition {
            ErrorCondition::Forbidden => Self::Banned,
            ErrorCondition::RegistrationRequired => Self::MembersOnly,
            ErrorCondition::Conflict => Self::NickTaken,
            other => Self::Refused(other.clone()),
        }
    }
}

/// What a presence from a room says about us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPresence {
    /// We are in the room, as this occupant.
    Joined(SelfOccupant),
    /// The room removed us, or confirmed our leave.
    Removed(RemovalReason),
    /// The room refused to let us in.
    Refused(ErrorCondition),
    /// About another occupant, or nothing we act on (a nick change).
    Other,
}

/// Reads a presence that comes from `room@service/nick`: the room's bare
/// JID and what it says. `None` for a presence without a `from`.
pub fn read_presence(p: &Presence) -> Option<(BareJid, RoomPresence)> {
    let from: &Jid = p.from.as_ref()?;
    let room = from.to_bare();
    if p.type_ == PresenceType::Error {
        return Some((
            room,
            RoomPresence::Refused(ErrorCondition::of_payloads(&p.payloads)),
        ));
    }
    let Some(x) = p.payloads.iter().find(|e| e.is("x", NS_MUC_USER)) else {
        return Some((room, RoomPresence::Other));
    };
    // Each status is read on its own, so that an extension the parser does
    // not know (a `<destroy/>`, an `<item/>` variant) cannot hide status 110.
    let statuses: Vec<Status> = x
        .children()
        .filter(|c| c.is("status", NS_MUC_USER))
        .filter_map(|c| Status::try_from(c.clone()).ok())
        .collect();
    // A destroyed room is gone for every occupant, us included, whoever
    // the presence names: ejabberd, following XEP-0045's example, sends
    // the destruction without status 110.
    if p.type_ == PresenceType::Unavailable && x.children().any(|c| c.is("destroy", NS_MUC_USER)) {
        return Some((room, RoomPresence::Removed(RemovalReason::Destroyed)));
    }
    if !statuses.contains(&Status::SelfPresence) {
        return Some((room, RoomPresence::Other));
    }
    let what = match p.type_ {
        PresenceType::None => match from.resource() {
            Some(nick) => RoomPresence::Joined(SelfOccupant {
                nick: nick.to_string(),
                occupant_id: p
                    .payloads
                    .iter()
                    .find(|e| e.is("occupant-id", NS_OCCUPANT_ID))
                    .and_then(|e| e.attr("id"))
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned),
                non_anonymous: statuses.contains(&Status::NonAnonymousRoom),
            }),
            None => RoomPresence::Other,
        },
        // 303 is a nick change: an available presence with the new nick follows.
        PresenceType::Unavailable if statuses.contains(&Status::NewNick) => RoomPresence::Other,
        PresenceType::Unavailable => RoomPresence::Removed(removal_reason(x, &statuses)),
        _ => RoomPresence::Other,
    };
    Some((room, what))
}

fn removal_reason(x: &Element, statuses: &[Status]) -> RemovalReason {
    if x.children().any(|c| c.is("destroy", NS_MUC_USER)) {
        return RemovalReason::Destroyed;
    }
    // A technical removal (333: the server could not deliver to us, as
    // Prosody says to every occupant when it stops; 332: shutdown) is not
    // a moderator's decision, whatever else the presence says.
    if statuses
        .iter()
        .any(|s| matches!(s, Status::ServiceErrorKick | Status::ServiceShutdown))
    {
        return RemovalReason::ServiceShutdown;
    }
    for s in statuses {
        match s {
            Status::Kicked => return RemovalReason::Kicked,
            Status::Banned => return RemovalReason::Banned,
            Status::RemovalFromRoom => return RemovalReason::AffiliationChanged,
            Status::ConfigMembersOnly => return RemovalReason::MembersOnly,
            Status::ServiceShutdown => return RemovalReason::ServiceShutdown,
            _ => {}
        }
    }
    RemovalReason::Left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(xml: &str) -> RoomPresence {
        let el: Element = xml.parse().unwrap();
        read_presence(&Presence::try_from(el).unwrap()).unwrap().1
    }

    #[test]
    fn join_presence_asks_for_no_history() {
        let room = BareJid::new("r@muc.example").unwrap();
        let el = Element::from(join_presence(&room, "me").unwrap());
        assert_eq!(el.attr("to"), Some("r@muc.example/me"));
        let history = el
            .get_child("x", "http://jabber.org/protocol/muc")
            .and_then(|x| x.get_child("history", "http://jabber.org/protocol/muc"))
            .unwrap();
        assert_eq!(history.attr("maxstanzas"), Some("0"));
    }

    #[test]
    fn our_presence_in_all_its_shapes() {
        let x = |codes: &str| {
            format!("<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>{codes}</x>")
        };
        let st = |c: u16| format!("<status code='{c}'/>");
        assert_eq!(
            read(&format!(
                "<presence xmlns='jabber:client' from='r@m/me2'>{}</presence>",
                x(&(st(110) + &st(210)))
            )),
            RoomPresence::Joined(SelfOccupant {
                nick: "me2".into(),
                occupant_id: None,
                non_anonymous: false
            })
        );
        // A non-anonymous room (100) that gives occupant ids (XEP-0421).
        assert_eq!(
            read(&format!(
                "<presence xmlns='jabber:client' from='r@m/me'>{}\
                 <occupant-id xmlns='urn:xmpp:occupant-id:0' id='dGhlIGlk'/></presence>",
                x(&(st(100) + &st(110)))
            )),
            RoomPresence::Joined(SelfOccupant {
                nick: "me".into(),
                occupant_id: Some("dGhlIGlk".into()),
                non_anonymous: true
            })
        );
        for (codes, reason) in [
            (st(110), RemovalReason::Left),
            (st(110) + &st(307), RemovalReason::Kicked),
            (st(301) + &st(110), RemovalReason::Banned),
            (st(110) + &st(321), RemovalReason::AffiliationChanged),
            (st(110) + &st(322), RemovalReason::MembersOnly),
            (st(110) + &st(332), RemovalReason::ServiceShutdown),
            // What Prosody sends every occupant when it stops.
            (st(333) + &st(110), RemovalReason::ServiceShutdown),
            (
                st(110) + "<destroy jid='other@m'><reason>bye</reason></destroy>",
                RemovalReason::Destroyed,
            ),
        ] {
            assert_eq!(
                read(&format!("<presence xmlns='jabber:client' type='unavailable' from='r@m/me'>{}</presence>", x(&codes))),
                RoomPresence::Removed(reason.clone()),
                "{codes}"
            );
        }
        assert_eq!(
            read(&format!(
                "<presence xmlns='jabber:client' type='unavailable' from='r@m/me'>{}</presence>",
                x(&(st(110) + &st(303)))
            )),
            RoomPresence::Other
        );
        // ejabberd's destruction, without status 110 (XEP-0045 §10.9).
        assert_eq!(
            read("<presence xmlns='jabber:client' type='unavailable' from='r@m/me'>\
                  <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>\
                  <destroy><reason>bye</reason></destroy></x></presence>"),
            RoomPresence::Removed(RemovalReason::Destroyed)
        );
        // Another occupant's presence is not about us.
        assert_eq!(
            read(&format!(
                "<presence xmlns='jabber:client' from='r@m/bob'>{}</presence>",
                x("")
            )),
            RoomPresence::Other
        );
    }

    #[test]
    fn a_refused_reentry_is_a_decision_with_its_reason() {
        for (condition, reason) in [
            (ErrorCondition::Forbidden, RemovalReason::Banned),
            (
                ErrorCondition::RegistrationRequired,
                RemovalReason::MembersOnly,
            ),
            (ErrorCondition::Conflict, RemovalReason::NickTaken),
            (
                ErrorCondition::ServiceUnavailable,
                RemovalReason::Refused(ErrorCondition::ServiceUnavailable),
            ),
        ] {
            let r = RemovalReason::of_refusal(&condition);
            assert_eq!(r, reason);
            assert!(r.is_decision(), "{r:?}");
        }
    }

    #[test]
    fn refusal_is_typed() {
        assert_eq!(
            read("<presence xmlns='jabber:client' type='error' from='r@m/me'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"),
            RoomPresence::Refused(ErrorCondition::Conflict)
        );
    }
}
