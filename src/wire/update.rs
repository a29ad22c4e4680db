//! The webxdc status update (XEP-0491): one `sendUpdate()` ⇄ one stored
//! `<message/>`, as Cheogram sends it.
//!
//! ```xml
//! <message to='room@conference.example' type='groupchat' id='…'>
//!   <body>Alice moved a piece</body>                 <!-- info, if any -->
//!   <thread>THREAD-OF-THE-WEBXDC-MESSAGE</thread>
//!   <store xmlns='urn:xmpp:hints'/>
//!   <x xmlns='urn:xmpp:webxdc:0'>
//!     <json xmlns='urn:xmpp:json:0'>{"move":"e4"}</json>
//!     <document>Game</document>                      <!-- if any -->
//!     <summary>Alice to play</summary>               <!-- if any -->
//!   </x>
//!   <origin-id xmlns='urn:xmpp:sid:0' id='…'/>
//! </message>
//! ```
//!
//! Unlike a realtime frame, an update is meant to be kept: `<store/>` asks
//! the server to archive it, and the room's archive (XEP-0313) is where a
//! member that joins later finds the past updates. A message whose `<x/>`
//! holds a `<data/>` is a realtime frame ([`super::frame`]), never an update.

use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::message::{Lang, Message};

use super::{
    addressing, new_message, validate_thread, Addressing, ChatKind, WireError, NS_HINTS, NS_SID,
    NS_WEBXDC,
};

/// Namespace of XEP-0335 JSON containers (`<json/>`).
pub const NS_JSON: &str = "urn:xmpp:json:0";

/// The largest update the webxdc API lets an app send
/// (`sendUpdateMaxSize`), in bytes of its JSON text.
pub const MAX_UPDATE_SIZE: usize = 128_000;

/// The largest update stanza we build or accept, as escaped XML text. An
/// update of [`MAX_UPDATE_SIZE`] whose JSON is full of quotes would escape
/// to six times its size, past the 256 KiB stanza limit of common servers,
/// which close the whole stream over it.
const MAX_UPDATE_WIRE: usize = 200_000;

/// One status update, as an app passes it to `sendUpdate()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The update's `payload`, as JSON text.
    pub payload: String,
    /// `info`: a line for the chat (sent as the message body).
    pub info: Option<String>,
    /// `document`: the name of the document the app edits.
    pub document: Option<String>,
    /// `summary`: a short status of the app.
    pub summary: Option<String>,
}

impl StatusUpdate {
    /// An update with only a payload (JSON text).
    pub fn new(payload: impl Into<String>) -> Self {
        StatusUpdate {
            payload: payload.into(),
            info: None,
            document: None,
            summary: None,
        }
    }
}

/// A status update read from a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFrame {
    /// The sender as stamped by the server (`room@service/nick` in a room).
    pub from: Jid,
    /// Group or 1:1.
    pub kind: ChatKind,
    /// The app instance (the `<thread/>` text).
    pub thread: String,
    /// The update.
    pub update: StatusUpdate,
    /// The XEP-0359 origin id the sender set, if any.
    pub origin_id: Option<String>,
    /// The id under which the chat's archive keeps it: a XEP-0359
    /// `<stanza-id/>` stamped `by` the room (only a room's own stamp is
    /// believed; anyone can add one with another `by`).
    pub archive_id: Option<String>,
}

/// Builds the stanza that carries `update` to `to` for app instance
/// `thread`; `id` is the stanza id and the origin id.
pub fn encode_update(
    to: &BareJid,
    kind: ChatKind,
    thread: &str,
    update: &StatusUpdate,
    id: &str,
) -> Result<Message, WireError> {
    validate_thread(thread)?;
    check_update(update)?;
    let mut message = new_message(to, kind, thread, id);
    if let Some(info) = &update.info {
        message.bodies.insert(Lang(String::new()), info.clone());
    }
    message.payloads.push(Element::bare("store", NS_HINTS));
    let mut x = Element::builder("x", NS_WEBXDC)
        .append(
            Element::builder("json", NS_JSON)
                .append(update.payload.clone())
                .build(),
        )
        .build();
    if let Some(document) = &update.document {
        x.append_child(
            Element::builder("document", NS_WEBXDC)
                .append(document.clone())
                .build(),
        );
    }
    if let Some(summary) = &update.summary {
        x.append_child(
            Element::builder("summary", NS_WEBXDC)
                .append(summary.clone())
                .build(),
        );
    }
    message.payloads.push(x);
    message.payloads.push(super::frame::origin_id(id));
    Ok(message)
}

/// Whether `update` may be sent: its payload is JSON of at most
/// [`MAX_UPDATE_SIZE`] bytes, and the whole fits in one stanza.
pub fn check_update(update: &StatusUpdate) -> Result<(), WireError> {
    if update.payload.len() > MAX_UPDATE_SIZE {
        return Err(WireError::TooLarge {
            size: update.payload.len(),
        });
    }
    let wire = [
        Some(&update.payload),
        update.info.as_ref(),
        update.document.as_ref(),
        update.summary.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|t| escaped_len(t))
    .sum::<usize>();
    if wire > MAX_UPDATE_WIRE {
        return Err(WireError::TooLarge { size: wire });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(&update.payload)
        .map_err(|e| WireError::BadJson(e.to_string()))?;
    Ok(())
}

/// The length of `text` once escaped as XML character data.
fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'<' | b'>' => 4,
            b'&' => 5,
            b'\'' | b'"' => 6,
            _ => 1,
        })
        .sum()
}

/// Reads a typed message: `Ok(Some(update))` for a valid status update,
/// `Ok(None)` for anything that is not one (a realtime frame among them),
/// `Err` for a message that claims to be an update but is not valid.
pub fn decode_update(m: &Message) -> Result<Option<UpdateFrame>, WireError> {
    let xs: Vec<&Element> = m.payloads.iter().filter(|p| p.is("x", NS_WEBXDC)).collect();
    let Some(&x) = xs.first() else {
        return Ok(None);
    };
    if xs
        .iter()
        .any(|x| x.children().any(|c| c.is("data", NS_WEBXDC)))
    {
        return Ok(None); // realtime data: the frame decoder's to judge
    }
    let holds_update = |x: &&Element| {
        x.children().any(|c| {
            c.is("json", NS_JSON) || c.is("document", NS_WEBXDC) || c.is("summary", NS_WEBXDC)
        })
    };
    // As for frames (see `frame::decode_message`): two `<x/>`s make it
    // unclear which update this is.
    if xs.len() > 1 && xs.iter().any(holds_update) {
        return Err(WireError::AmbiguousX(xs.len()));
    }
    let one = |name: &str, ns: &str| -> Result<Option<String>, WireError> {
        let mut found = x.children().filter(|c| c.is(name, ns));
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some(el), None) => Ok(Some(el.text())),
            (Some(_), Some(_)) => Err(WireError::Invalid(format!("more than one <{name}/>"))),
        }
    };
    let json = one("json", NS_JSON)?;
    let document = one("document", NS_WEBXDC)?;
    let summary = one("summary", NS_WEBXDC)?;
    if json.is_none() && document.is_none() && summary.is_none() {
        return Ok(None); // another use of the namespace
    }
    let Addressing { kind, from, thread } = addressing(m)?;
    let update = StatusUpdate {
        // An update without a payload (only a document or summary) is
        // delivered with a JSON `null` payload.
        payload: json.unwrap_or_else(|| "null".to_owned()),
        info: m
            .bodies
            .get(&Lang(String::new()))
            .or_else(|| m.bodies.values().next())
            .cloned(),
        document,
        summary,
    };
    check_update(&update)?;
    let sid = |name: &str| {
        m.payloads
            .iter()
            .filter(|p| p.is(name, NS_SID))
            .find(|p| name == "origin-id" || p.attr("by") == Some(from.to_bare().as_str()))
            .and_then(|p| p.attr("id"))
            .map(str::to_owned)
    };
    Ok(Some(UpdateFrame {
        origin_id: sid("origin-id"),
        archive_id: match kind {
            ChatKind::Group => sid("stanza-id"),
            ChatKind::Direct => None,
        },
        from,
        kind,
        thread,
        update,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> BareJid {
        BareJid::new("room@conference.localhost").unwrap()
    }

    fn reflected(update: &StatusUpdate) -> Message {
        let mut m = encode_update(&room(), ChatKind::Group, "t", update, "o1").unwrap();
        m.from = Some(Jid::new("room@conference.localhost/alice").unwrap());
        m
    }

    #[test]
    fn round_trip_with_every_field() {
        let update = StatusUpdate {
            payload: r#"{"a":[1,"<&>'\""]}"#.into(),
            info: Some("Alice did it".into()),
            document: Some("Doc".into()),
            summary: Some("3 moves".into()),
        };
        let m = reflected(&update);
        let el = Element::from(m.clone());
        assert!(el.has_child("store", NS_HINTS));
        assert_eq!(
            el.get_child("body", "jabber:client").unwrap().text(),
            "Alice did it"
        );
        let frame = decode_update(&m).unwrap().unwrap();
        assert_eq!(frame.update, update);
        assert_eq!(frame.thread, "t");
        assert_eq!(frame.origin_id.as_deref(), Some("o1"));
        // Through text and back, as it travels.
        let back = Message::try_from(String::from(&el).parse::<Element>().unwrap()).unwrap();
        assert_eq!(decode_update(&back).unwrap().unwrap().update, update);
    }

    #[test]
    fn realtime_frames_and_chat_messages_are_not_updates() {
        let frame = super::super::encode(&room(), ChatKind::Group, "t", b"x", "i").unwrap();
        assert_eq!(decode_update(&frame), Ok(None));
        let chat = Message::new_with_type(xmpp_parsers::message::MessageType::Groupchat, None);
        assert_eq!(decode_update(&chat), Ok(None));
    }

    #[test]
    fn bad_updates_are_refused_both_ways() {
        assert!(matches!(
            check_update(&StatusUpdate::new("{not json")),
            Err(WireError::BadJson(_))
        ));
        let big = format!("\"{}\"", "a".repeat(MAX_UPDATE_SIZE));
        assert!(matches!(
            check_update(&StatusUpdate::new(big)),
            Err(WireError::TooLarge { .. })
        ));
        // Small in bytes, too large once escaped.
        let quotes = format!("[{}]", vec!["\"\""; 20_000].join(","));
        assert!(quotes.len() < MAX_UPDATE_SIZE);
        assert!(matches!(
            check_update(&StatusUpdate::new(quotes)),
            Err(WireError::TooLarge { .. })
        ));
        let mut m = reflected(&StatusUpdate::new("1"));
        m.payloads.retain(|p| !p.is("x", NS_WEBXDC));
        m.payloads.push(
            Element::builder("x", NS_WEBXDC)
                .append(Element::builder("json", NS_JSON).append("{oops").build())
                .build(),
        );
        assert!(matches!(decode_update(&m), Err(WireError::BadJson(_))));
        m.thread = None;
        assert!(decode_update(&m).is_err());
    }

    #[test]
    fn two_webxdc_x_elements_are_refused() {
        let mut m = reflected(&StatusUpdate::new("1"));
        let x = m.payloads.iter().find(|p| p.is("x", NS_WEBXDC)).unwrap();
        m.payloads.push(x.clone());
        assert_eq!(decode_update(&m), Err(WireError::AmbiguousX(2)));
    }

    #[test]
    fn only_the_rooms_own_archive_id_is_believed() {
        let mut m = reflected(&StatusUpdate::new("1"));
        m.payloads.push(
            "<stanza-id xmlns='urn:xmpp:sid:0' by='evil@example.org' id='forged'/>"
                .parse()
                .unwrap(),
        );
        assert_eq!(decode_update(&m).unwrap().unwrap().archive_id, None);
        m.payloads.push(
            "<stanza-id xmlns='urn:xmpp:sid:0' by='room@conference.localhost' id='arch-7'/>"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            decode_update(&m).unwrap().unwrap().archive_id.as_deref(),
            Some("arch-7")
        );
    }
}
