//! Everything XMPP-shaped: what goes on the wire and how it is read back.
//!
//! Pure functions and plain types, no state. The format is specified for
//! other implementers in `docs/wire-format.md`, whose examples the tests
//! parse.
//!
//! * [`frame`]: a realtime payload ⇄ a `<message/>` (Cheogram's format).
//! * [`update`]: a webxdc status update (XEP-0491) ⇄ a stored `<message/>`.
//! * [`muc`]: the room side: join and leave presences, and what a room's
//!   presence about us means (joined, refused, removed).
//! * [`share`]: the message that shares an app (Cheogram's file message).
//! * [`upload`]: HTTP file upload (XEP-0363) slots and service discovery.
//! * [`mam`]: reading a room's archive (XEP-0313), where past status
//!   updates are found.
//! * [`ErrorCondition`]: a stanza error's condition, typed.
//!
//! The engine reads stanzas only through this module, so the wire format
//! lives in one place.

pub mod frame;
pub mod mam;
pub mod muc;
pub mod share;
pub mod update;
pub mod upload;

use minidom::Element;

pub use frame::{decode, decode_message, encode, Frame, WireError};

/// The largest payload the webxdc API allows in one `send`, in bytes.
pub const MAX_PAYLOAD: usize = 128_000;

/// Namespace of the webxdc extension element (`<x/>`).
pub const NS_WEBXDC: &str = "urn:xmpp:webxdc:0";
/// Namespace of XEP-0334 message processing hints (`<no-store/>`).
pub const NS_HINTS: &str = "urn:xmpp:hints";
/// Namespace of XEP-0359 unique stanza ids (`<origin-id/>`).
pub const NS_SID: &str = "urn:xmpp:sid:0";
/// The client stanza namespace.
pub const NS_CLIENT: &str = "jabber:client";
/// Namespace of RFC 6120 stanza error conditions.
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Whether a frame travels in a group chat (MUC) or a 1:1 chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatKind {
    /// `type='groupchat'`, addressed to the room's bare JID.
    Group,
    /// `type='chat'`, addressed to the contact's bare JID.
    Direct,
}

/// The longest thread id (app instance id) this library sends or accepts,
/// in bytes of UTF-8.
///
/// The thread travels in every stanza of the instance, beside a payload of
/// up to [`MAX_PAYLOAD`] bytes (170,668 bytes of base64). Both test
/// servers, as configured and by default, close the stream on a stanza over
/// 256 KiB (Prosody's `c2s_stanza_size_limit`, ejabberd's `max_stanza_size`
/// in its example configuration), which leaves about 90 KB for everything
/// else: a 100 KB thread would make the largest payloads kill the
/// connection. Real instance ids are short (Cheogram: a UUID, 36 bytes;
/// Delta Chat: a Message-ID, which RFC 5322's 998-character line keeps
/// under 1 KB), so 1024 bytes takes every one of them, and even escaped at
/// worst (`&amp;`, five bytes per byte) a thread adds at most 5 KiB.
pub const MAX_THREAD: usize = 1024;

/// Checks that `thread` can name an app instance on the wire: not empty or
/// blank, at most [`MAX_THREAD`] bytes ([`WireError::ThreadTooLong`]), and
/// only characters XML 1.0 can carry ([`WireError::InvalidThread`]).
pub fn validate_thread(thread: &str) -> Result<(), WireError> {
    // Checked first, so that a huge thread is refused without a scan.
    if thread.len() > MAX_THREAD {
        return Err(WireError::ThreadTooLong { len: thread.len() });
    }
    // Control characters other than tab/newline are not allowed in XML 1.0
    // text; an empty thread could not be told apart from "no thread".
    let bad = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if thread.trim().is_empty() || thread.chars().any(bad) {
        return Err(WireError::InvalidThread);
    }
    Ok(())
}

/// A message to `to` in a chat of `kind` for app instance `thread`, with
/// `id` as its stanza id: what frames and status updates start from.
fn new_message(
    to: &jid::BareJid,
    kind: ChatKind,
    thread: &str,
    id: &str,
) -> xmpp_parsers::message::Message {
    use xmpp_parsers::message::{Id, Message, MessageType, Thread};
    let type_ = match kind {
        ChatKind::Group => MessageType::Groupchat,
        ChatKind::Direct => MessageType::Chat,
    };
    let mut message = Message::new_with_type(type_, Some(jid::Jid::from(to.clone())));
    message.id = Some(Id(id.to_owned()));
    message.thread = Some(Thread {
        parent: None,
        id: thread.to_owned(),
    });
    message
}

/// Who sent a webxdc message, in which kind of chat, for which instance:
/// the rules frames and status updates share.
struct Addressing {
    kind: ChatKind,
    from: jid::Jid,
    thread: String,
}

fn addressing(m: &xmpp_parsers::message::Message) -> Result<Addressing, WireError> {
    use xmpp_parsers::message::MessageType;
    let kind = match m.type_ {
        MessageType::Groupchat => ChatKind::Group,
        // RFC 6121: a missing type means 'normal'; some clients send that
        // in 1:1 conversations, so it is accepted as a 1:1 message.
        MessageType::Chat | MessageType::Normal => ChatKind::Direct,
        MessageType::Headline => return Err(WireError::UnsupportedType("headline".into())),
        MessageType::Error => {
            return Err(WireError::ErrorBounce {
                from: m.from.clone(),
                condition: ErrorCondition::of_payloads(&m.payloads),
            })
        }
    };
    let from = m.from.clone().ok_or(WireError::MissingFrom)?;
    let thread = m
        .thread
        .as_ref()
        .map(|t| t.id.clone())
        .filter(|t| !t.trim().is_empty())
        .ok_or(WireError::MissingThread)?;
    // The sender's limit holds for what we accept too: nothing is
    // delivered, and no instance is announced, for a thread we could not
    // use to answer.
    if thread.len() > MAX_THREAD {
        return Err(WireError::ThreadTooLong { len: thread.len() });
    }
    Ok(Addressing { kind, from, thread })
}

/// Messages reach an embedding messenger in the client namespace; a
/// component connection (`jabber:component:accept`) uses its own.
fn is_stanza_ns(ns: &str) -> bool {
    ns == NS_CLIENT || ns == "jabber:component:accept"
}

/// A stanza error's condition (RFC 6120 §8.3.3), for the cases this
/// library acts on or reports; any other condition keeps its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCondition {
    /// `forbidden`: for a room, we are banned.
    Forbidden,
    /// `registration-required`: the room is members-only.
    RegistrationRequired,
    /// `conflict`: our nick is taken in the room.
    Conflict,
    /// `not-authorized`: the room needs a password.
    NotAuthorized,
    /// `service-unavailable`: for a room, it is full (or the service is off).
    ServiceUnavailable,
    /// `item-not-found`: the room does not exist (or is locked).
    ItemNotFound,
    /// `not-allowed`: the room may not be created or entered.
    NotAllowed,
    /// `not-acceptable`: the stanza was refused as it is.
    NotAcceptable,
    /// `policy-violation`: a server policy (size, rate) refused it.
    PolicyViolation,
    /// `resource-constraint`: the server is out of resources.
    ResourceConstraint,
    /// `remote-server-not-found` or `remote-server-timeout`.
    RemoteServer,
    /// Another defined condition, by its name.
    Other(String),
    /// The error carried no condition at all.
    Undefined,
}

impl ErrorCondition {
    /// The condition named `name` (an element name in the stanzas namespace).
    pub fn from_name(name: &str) -> Self {
        match name {
            "forbidden" => Self::Forbidden,
            "registration-required" => Self::RegistrationRequired,
            "conflict" => Self::Conflict,
            "not-authorized" => Self::NotAuthorized,
            "service-unavailable" => Self::ServiceUnavailable,
            "item-not-found" => Self::ItemNotFound,
            "not-allowed" => Self::NotAllowed,
            "not-acceptable" => Self::NotAcceptable,
            "policy-violation" => Self::PolicyViolation,
            "resource-constraint" => Self::ResourceConstraint,
            "remote-server-not-found" | "remote-server-timeout" => Self::RemoteServer,
            "undefined-condition" => Self::Undefined,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The RFC 6120 name of the condition.
    pub fn name(&self) -> &str {
        match self {
            Self::Forbidden => "forbidden",
            Self::RegistrationRequired => "registration-required",
            Self::Conflict => "conflict",
            Self::NotAuthorized => "not-authorized",
            Self::ServiceUnavailable => "service-unavailable",
            Self::ItemNotFound => "item-not-found",
            Self::NotAllowed => "not-allowed",
            Self::NotAcceptable => "not-acceptable",
            Self::PolicyViolation => "policy-violation",
            Self::ResourceConstraint => "resource-constraint",
            Self::RemoteServer => "remote-server-not-found",
            Self::Other(name) => name,
            Self::Undefined => "undefined-condition",
        }
    }

    /// The condition of the `<error/>` among a stanza's children
    /// ([`Undefined`](Self::Undefined) when there is none).
    pub fn of_payloads(payloads: &[Element]) -> Self {
        payloads
            .iter()
            .find(|c| c.name() == "error")
            .and_then(|e| e.children().find(|c| c.ns() == NS_STANZAS))
            .map(|c| Self::from_name(c.name()))
            .unwrap_or(Self::Undefined)
    }
}

impl std::fmt::Display for ErrorCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<&str> for ErrorCondition {
    fn from(name: &str) -> Self {
        Self::from_name(name)
    }
}

/// Lets callers compare with the RFC name: `condition == "forbidden"`.
impl PartialEq<str> for ErrorCondition {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_limits() {
        assert_eq!(validate_thread(""), Err(WireError::InvalidThread));
        assert_eq!(validate_thread(" \t\n"), Err(WireError::InvalidThread));
        assert_eq!(validate_thread("a\u{1}b"), Err(WireError::InvalidThread));
        assert_eq!(validate_thread("a\u{ffff}"), Err(WireError::InvalidThread));
        assert_eq!(validate_thread(&"t".repeat(MAX_THREAD)), Ok(()));
        // Bytes, not characters: 342 three-byte characters are 1026 bytes.
        assert_eq!(
            validate_thread(&"€".repeat(342)),
            Err(WireError::ThreadTooLong { len: 1026 })
        );
        assert_eq!(
            validate_thread(&"t".repeat(100_000)),
            Err(WireError::ThreadTooLong { len: 100_000 })
        );
    }

    #[test]
    fn an_incoming_thread_over_the_limit_is_refused() {
        let stanza = |thread: &str| {
            format!(
                "<message xmlns='jabber:client' from='bob@example.org/phone' type='chat'>\
                 <thread>{thread}</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>"
            )
        };
        let at_limit: Element = stanza(&"t".repeat(MAX_THREAD)).parse().unwrap();
        assert!(matches!(decode(&at_limit), Ok(Some(_))));
        let over: Element = stanza(&"t".repeat(MAX_THREAD + 1)).parse().unwrap();
        assert_eq!(
            decode(&over).err(),
            Some(WireError::ThreadTooLong {
                len: MAX_THREAD + 1
            })
        );
    }

    #[test]
    fn an_incoming_update_with_a_thread_over_the_limit_is_refused() {
        let update = |thread: &str| -> xmpp_parsers::message::Message {
            let el: Element = format!(
                "<message xmlns='jabber:client' from='room@muc.example.org/bob' type='groupchat'>\
                 <thread>{thread}</thread><x xmlns='urn:xmpp:webxdc:0'>\
                 <json xmlns='urn:xmpp:json:0'>{{\"a\":1}}</json></x></message>"
            )
            .parse()
            .unwrap();
            el.try_into().unwrap()
        };
        assert!(matches!(
            update::decode_update(&update(&"t".repeat(MAX_THREAD))),
            Ok(Some(_))
        ));
        assert_eq!(
            update::decode_update(&update(&"t".repeat(MAX_THREAD + 1))).err(),
            Some(WireError::ThreadTooLong {
                len: MAX_THREAD + 1
            })
        );
    }

    #[test]
    fn conditions_round_trip_by_name() {
        for name in [
            "forbidden",
            "registration-required",
            "conflict",
            "not-authorized",
            "service-unavailable",
            "item-not-found",
            "not-allowed",
            "not-acceptable",
            "policy-violation",
            "resource-constraint",
            "gone",
            "undefined-condition",
        ] {
            assert_eq!(ErrorCondition::from_name(name).name(), name);
        }
    }

    #[test]
    fn condition_of_an_error_payload() {
        let err: Element = "<error xmlns='jabber:client' type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
            .parse()
            .unwrap();
        assert_eq!(
            ErrorCondition::of_payloads(&[err]),
            ErrorCondition::Conflict
        );
        assert_eq!(ErrorCondition::of_payloads(&[]), ErrorCondition::Undefined);
    }
}
