//! The realtime frame: one payload ⇄ one `<message/>` stanza.
//!
//! ```xml
//! <message to='room@conference.example' type='groupchat' id='…'>
//!   <thread>THREAD-OF-THE-WEBXDC-MESSAGE</thread>
//!   <no-store xmlns='urn:xmpp:hints'/>
//!   <x xmlns='urn:xmpp:webxdc:0'><data>BASE64</data></x>
//!   <origin-id xmlns='urn:xmpp:sid:0' id='…'/>
//! </message>
//! ```
//!
//! [`encode`] builds the stanza we send; [`decode_message`] is the one
//! decoder, reading the typed message tokio-xmpp delivers; [`decode`] is a
//! thin wrapper for an element. Decoding is tolerant of what other clients
//! legitimately send (line breaks inside the base64, extra elements, a
//! `<body>` fallback, a missing or `normal` type in 1:1 chats) and strict
//! about what cannot be a valid frame (bad base64, a missing thread, a
//! payload over the limit, an error bounce), so that the engine never
//! delivers something it would not have sent itself.

use base64::Engine as _;
use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::message::Message;

use super::{
    addressing, is_stanza_ns, new_message, validate_thread, Addressing, ChatKind, ErrorCondition,
    MAX_PAYLOAD, NS_HINTS, NS_SID, NS_WEBXDC,
};

/// Longest base64 text that can decode to at most [`MAX_PAYLOAD`] bytes
/// (padding included). Checked before decoding so that a hostile stanza
/// cannot make us allocate more than the limit.
const MAX_BASE64_LEN: usize = MAX_PAYLOAD.div_ceil(3) * 4;

/// The deepest nesting of elements a stanza may have, the stanza itself
/// being level 1. The deepest stanza this library reads (an archived
/// shared app: message, result, forwarded, message, reference,
/// media-sharing, file, hash) has 8 levels. Deeper input is refused before
/// anything recurses into it: parsing into typed stanzas, cloning and
/// dropping elements all recurse once per level, and a few thousand levels
/// (well inside a server's 256 KiB stanza limit) overflow a thread's stack,
/// which aborts the whole process.
pub const MAX_DEPTH: usize = 64;

/// Whether `el` nests elements deeper than [`MAX_DEPTH`] levels, counting
/// `el` as level `level`. Walks the tree without recursion.
pub fn too_deep(el: &Element, level: usize) -> bool {
    let mut stack = vec![(el, level)];
    while let Some((e, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return true;
        }
        stack.extend(e.children().map(|c| (c, depth + 1)));
    }
    false
}

/// Whether the XML text `xml` nests elements deeper than [`MAX_DEPTH`],
/// judged by a scan of the text alone (start and end tags, with comments,
/// CDATA sections, processing instructions and quoted attribute values
/// skipped). The parser's time grows faster than the depth (about a
/// second for 40000 levels): this lets a caller refuse such text without
/// parsing it. Exact for well-formed XML; text that is not well-formed is
/// refused by the parser anyway.
pub fn text_too_deep(xml: &str) -> bool {
    let b = xml.as_bytes();
    let find = |from: usize, pat: &[u8]| {
        b.get(from..)
            .and_then(|rest| rest.windows(pat.len()).position(|w| w == pat))
            .map(|p| from + p + pat.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'<')) {
        i += off;
        let rest = &b[i..];
        let skip_to = |pat: &[u8]| find(i, pat).unwrap_or(b.len());
        if rest.starts_with(b"<!--") {
            i = skip_to(b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to(b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_to(b"?>");
        } else if rest.starts_with(b"<!") {
            i = skip_to(b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_to(b">");
        } else {
            // A start tag: its end is the first '>' outside quotes.
            let mut j = i + 1;
            let mut quote = None;
            while let Some(&c) = b.get(j) {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'\'' | b'"') => quote = Some(c),
                    (None, b'>') => break,
                    (None, _) => {}
                }
                j += 1;
            }
            // An empty-element tag is a level too, with nothing inside.
            if depth + 1 > MAX_DEPTH {
                return true;
            }
            if b.get(j.wrapping_sub(1)) != Some(&b'/') {
                depth += 1;
            }
            i = j + 1;
        }
    }
    false
}

/// Takes `el` apart without recursion: dropping an element drops its
/// children recursively, which a deep enough element turns into a stack
/// overflow.
pub fn dismantle(el: Element) {
    let mut stack = vec![el];
    while let Some(mut e) = stack.pop() {
        for node in e.take_nodes() {
            if let minidom::Node::Element(child) = node {
                stack.push(child);
            }
        }
    }
}

/// A realtime frame read from a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The sender as stamped by the server: `room@service/nick` in a group
    /// chat, the contact's full JID in a 1:1 chat.
    pub from: Jid,
    /// The addressee, if the stanza named one.
    pub to: Option<Jid>,
    /// Group or 1:1, from the stanza's `type`.
    pub kind: ChatKind,
    /// The webxdc instance this frame belongs to (the `<thread/>` text).
    pub thread: String,
    /// The payload, exactly as the sender passed it to `send`.
    pub data: Vec<u8>,
    /// The stanza's `id` attribute, if any.
    pub id: Option<String>,
    /// The XEP-0359 origin id, if any (we set it to recognise our own MUC
    /// reflection even if the room rewrites the stanza `id`).
    pub origin_id: Option<String>,
}

/// Why a stanza that claims to be a realtime frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The element is not a `<message/>` in the client namespace.
    #[error("not a message stanza")]
    NotAMessage,
    /// A `type='error'` bounce of a realtime frame.
    #[error("error bounce from {from:?}: {condition}")]
    ErrorBounce {
        /// Who bounced it.
        from: Option<Jid>,
        /// The error condition (`not-acceptable`, `forbidden`, …).
        condition: ErrorCondition,
    },
    /// The stanza type is one a realtime frame never has (`headline`).
    #[error("unsupported message type '{0}' for a realtime frame")]
    UnsupportedType(String),
    /// There is no `<thread/>`, or it is empty: the frame belongs to no app
    /// instance, so it must not be delivered to any.
    #[error("realtime frame without a thread")]
    MissingThread,
    /// The stanza has no `from` (a server always stamps one on delivery).
    #[error("realtime frame without a sender")]
    MissingFrom,
    /// A `from` or `to` attribute is not a valid JID.
    #[error("invalid JID in '{attribute}': {value}")]
    BadJid {
        /// `from` or `to`.
        attribute: &'static str,
        /// The raw attribute value.
        value: String,
    },
    /// More than one `<data/>` element: which one is the payload is unclear.
    #[error("realtime frame with {0} data elements")]
    AmbiguousData(usize),
    /// More than one `<x xmlns='urn:xmpp:webxdc:0'/>` in a message that
    /// carries realtime data or a status update: which one counts is
    /// unclear (one receiver could read the first, another the last).
    #[error("message with {0} webxdc <x/> elements")]
    AmbiguousX(usize),
    /// The `<data/>` text is not valid standard base64.
    #[error("invalid base64 payload: {0}")]
    BadBase64(String),
    /// The payload is larger than [`MAX_PAYLOAD`] bytes (for incoming
    /// frames this is an estimate from the base64 length when that alone
    /// proves the payload too large).
    #[error("payload of {size} bytes exceeds the limit of {max} bytes", max = MAX_PAYLOAD)]
    TooLarge {
        /// The payload size in bytes.
        size: usize,
    },
    /// The thread identifier cannot be sent (empty, or not valid XML text).
    #[error("invalid thread identifier")]
    InvalidThread,
    /// The thread identifier is longer than [`MAX_THREAD`](super::MAX_THREAD)
    /// bytes: refused when sending, and an incoming message with one is
    /// dropped.
    #[error("thread identifier of {len} bytes exceeds the limit of {max} bytes", max = super::MAX_THREAD)]
    ThreadTooLong {
        /// Its length in bytes (UTF-8).
        len: usize,
    },
    /// The element is a message, but not a well-formed one (for example
    /// two `<thread/>` elements, or a bad attribute value).
    #[error("malformed message: {0}")]
    Invalid(String),
    /// The stanza nests elements deeper than [`MAX_DEPTH`] levels.
    #[error("stanza nested deeper than {max} elements", max = MAX_DEPTH)]
    TooDeep,
    /// A status update whose payload is not JSON.
    #[error("status update payload is not JSON: {0}")]
    BadJson(String),
}

/// Builds the stanza that carries `data` to `to` for app instance `thread`.
///
/// `id` becomes both the stanza `id` and the XEP-0359 `<origin-id/>`, so the
/// sender can recognise the room's reflection of its own frame.
///
/// Fails with [`WireError::TooLarge`] before building anything when `data`
/// is over [`MAX_PAYLOAD`] bytes: an oversize stanza would make the server
/// close the whole stream.
pub fn encode(
    to: &BareJid,
    kind: ChatKind,
    thread: &str,
    data: &[u8],
    id: &str,
) -> Result<Message, WireError> {
    if data.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge { size: data.len() });
    }
    validate_thread(thread)?;
    let mut message = new_message(to, kind, thread, id);
    message.payloads.push(Element::bare("no-store", NS_HINTS));
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let x = Element::builder("x", NS_WEBXDC)
        .append(Element::builder("data", NS_WEBXDC).append(encoded).build())
        .build();
    message.payloads.push(x);
    message.payloads.push(origin_id(id));
    Ok(message)
}

/// The XEP-0359 `<origin-id/>` with `id`, built directly: the same
/// element as `Element::from(OriginId { .. })`, which goes through xso's
/// serialiser item by item and cost half of `encode` for a small payload.
pub(crate) fn origin_id(id: &str) -> Element {
    // A constant that is an NCName: this cannot fail.
    let name = minidom::rxml::NcName::try_from("id").expect("'id' is an NCName");
    Element::builder("origin-id", NS_SID).attr(name, id).build()
}

/// Reads an element: the same rules as [`decode_message`], for a caller
/// that has an element rather than a typed message.
pub fn decode(el: &Element) -> Result<Option<Frame>, WireError> {
    decode_message(&parse_message(el)?)
}

/// Reads a `<message/>` element into its typed form.
///
/// Checks first what the typed form cannot report precisely: that the
/// element is a message in a stanza namespace, and that `from` and `to`
/// are JIDs (so the error names the bad attribute). Anything else the
/// parser refuses (two `<thread/>`s, an unknown `type`) is
/// [`WireError::Invalid`].
pub fn parse_message(el: &Element) -> Result<Message, WireError> {
    if el.name() != "message" || !is_stanza_ns(&el.ns()) {
        return Err(WireError::NotAMessage);
    }
    if too_deep(el, 1) {
        return Err(WireError::TooDeep);
    }
    parse_jid(el, "from")?;
    parse_jid(el, "to")?;
    Message::try_from(el.clone()).map_err(|e| WireError::Invalid(e.to_string()))
}

/// Reads a typed message: `Ok(None)` for anything that is not a realtime
/// frame at all (a chat message, a webxdc status update without `<data/>`,
/// an error bounce of something else), `Ok(Some(frame))` for a valid frame
/// and `Err` for a message that carries realtime data but is not a valid
/// frame.
pub fn decode_message(m: &Message) -> Result<Option<Frame>, WireError> {
    // Every webxdc `<x/>` of the message counts, not only the first: a
    // stanza with two, each holding one `<data/>`, is as ambiguous as one
    // `<x/>` with two `<data/>`s, and both are refused alike.
    let mut xs = m.payloads.iter().filter(|p| p.is("x", NS_WEBXDC));
    let (Some(x), more_xs) = (xs.next(), xs.count()) else {
        return Ok(None);
    };
    if more_xs > 0 {
        let any_data = m
            .payloads
            .iter()
            .filter(|p| p.is("x", NS_WEBXDC))
            .any(|x| x.children().any(|c| c.is("data", NS_WEBXDC)));
        return if any_data {
            Err(WireError::AmbiguousX(more_xs + 1))
        } else {
            // No realtime data anywhere: for the update decoder to judge.
            Ok(None)
        };
    }
    let datas: Vec<&Element> = x.children().filter(|c| c.is("data", NS_WEBXDC)).collect();
    let data_el = match datas.as_slice() {
        // A webxdc status update or another use of the namespace.
        [] => return Ok(None),
        [one] => *one,
        more => return Err(WireError::AmbiguousData(more.len())),
    };
    let Addressing { kind, from, thread } = addressing(m)?;
    let data = decode_data(data_el)?;
    let origin_id = m
        .payloads
        .iter()
        .find(|p| p.is("origin-id", NS_SID))
        .and_then(|o| o.attr("id"))
        .map(str::to_owned);
    Ok(Some(Frame {
        from,
        to: m.to.clone(),
        kind,
        thread,
        data,
        id: m.id.as_ref().map(|i| i.0.clone()),
        origin_id,
    }))
}

/// The payload of a `<data/>` element, borrowing its text when it is one
/// node (the usual case) instead of copying up to 171 KB first.
fn decode_data(data_el: &Element) -> Result<Vec<u8>, WireError> {
    let mut texts = data_el.texts();
    match (texts.next(), texts.next()) {
        (None, _) => decode_base64(""),
        (Some(only), None) => decode_base64(only),
        _ => decode_base64(&data_el.text()),
    }
}

/// Reads the JID in `attribute`, if the element has one.
fn parse_jid(el: &Element, attribute: &'static str) -> Result<Option<Jid>, WireError> {
    el.attr(attribute)
        .map(|value| {
            Jid::new(value).map_err(|_| WireError::BadJid {
                attribute,
                value: value.to_owned(),
            })
        })
        .transpose()
}

/// Decodes standard base64, tolerating ASCII whitespace (line-wrapped
/// encoders), refusing anything that would decode to more than
/// [`MAX_PAYLOAD`] bytes before allocating for it.
fn decode_base64(text: &str) -> Result<Vec<u8>, WireError> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    // Fast path: what conforming senders send, no whitespace. Only when
    // that fails is the text scanned for whitespace (a line-wrapping
    // encoder) and decoded again without it.
    let data = if text.len() <= MAX_BASE64_LEN {
        match b64.decode(text.as_bytes()) {
            Ok(data) => data,
            Err(e) => {
                if !text.bytes().any(|b| b.is_ascii_whitespace()) {
                    return Err(WireError::BadBase64(e.to_string()));
                }
                decode_compact(text)?
            }
        }
    } else {
        decode_compact(text)?
    };
    if data.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge { size: data.len() });
    }
    Ok(data)
}

/// Decodes `text` without its ASCII whitespace, refusing anything that
/// would decode to more than [`MAX_PAYLOAD`] bytes before allocating for it.
fn decode_compact(text: &str) -> Result<Vec<u8>, WireError> {
    let len = text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    if len > MAX_BASE64_LEN {
        return Err(WireError::TooLarge { size: len / 4 * 3 });
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| WireError::BadBase64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::NS_CLIENT;
    use xmpp_parsers::stanza_id::OriginId;

    fn parse(xml: &str) -> Element {
        xml.parse().expect("test XML parses")
    }

    fn room() -> BareJid {
        BareJid::new("room@conference.localhost").unwrap()
    }

    #[test]
    fn origin_id_is_the_typed_element() {
        for id in ["6c8e2f0a", "a'b\"<&>"] {
            let typed = Element::from(OriginId { id: id.to_owned() });
            assert_eq!(origin_id(id), typed);
            assert_eq!(String::from(&origin_id(id)), String::from(&typed));
        }
    }

    #[test]
    fn round_trip_all_byte_values() {
        let data: Vec<u8> = (0..=255u8).collect();
        let mut msg = encode(&room(), ChatKind::Group, "t1", &data, "id1").unwrap();
        msg.from = Some(Jid::new("room@conference.localhost/alice").unwrap());
        let el = Element::from(msg);
        let frame = decode(&el).unwrap().unwrap();
        assert_eq!(frame.data, data);
        assert_eq!(frame.thread, "t1");
        assert_eq!(frame.kind, ChatKind::Group);
        assert_eq!(frame.origin_id.as_deref(), Some("id1"));
        assert_eq!(frame.id.as_deref(), Some("id1"));
    }

    #[test]
    fn encode_shape_matches_the_spec() {
        let el = Element::from(encode(&room(), ChatKind::Direct, "t", b"hi", "x").unwrap());
        assert_eq!(el.attr("type"), Some("chat"));
        assert_eq!(el.attr("to"), Some("room@conference.localhost"));
        assert!(el.get_child("body", NS_CLIENT).is_none());
        assert!(el.has_child("no-store", NS_HINTS));
        let data = el
            .get_child("x", NS_WEBXDC)
            .unwrap()
            .get_child("data", NS_WEBXDC)
            .unwrap();
        assert_eq!(data.text(), "aGk=");
        assert_eq!(el.get_child("thread", NS_CLIENT).unwrap().text(), "t");
    }

    #[test]
    fn empty_and_max_payloads() {
        for len in [0, MAX_PAYLOAD] {
            let data = vec![0xA5; len];
            let mut msg = encode(&room(), ChatKind::Group, "t", &data, "i").unwrap();
            msg.from = Some(Jid::new("room@conference.localhost/n").unwrap());
            let el = Element::from(msg);
            assert_eq!(decode(&el).unwrap().unwrap().data.len(), len);
        }
    }

    #[test]
    fn oversize_is_refused_before_encoding() {
        let err = encode(
            &room(),
            ChatKind::Group,
            "t",
            &vec![0; MAX_PAYLOAD + 1],
            "i",
        )
        .unwrap_err();
        assert_eq!(
            err,
            WireError::TooLarge {
                size: MAX_PAYLOAD + 1
            }
        );
    }

    #[test]
    fn oversize_incoming_is_refused() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(vec![1u8; MAX_PAYLOAD + 1]);
        let el = parse(&format!(
            "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>{b64}</data></x></message>"
        ));
        assert!(matches!(decode(&el), Err(WireError::TooLarge { .. })));
        // Way over the limit: refused from the length alone.
        let el = parse(&format!(
            "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>{}</data></x></message>",
            "A".repeat(MAX_BASE64_LEN + 4)
        ));
        assert!(matches!(decode(&el), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn malformed_frames_are_errors() {
        type Check = fn(&WireError) -> bool;
        let cases: &[(&str, Check)] = &[
            (
                "<message xmlns='jabber:client' from='a@b/c' type='chat'><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>",
                |e| *e == WireError::MissingThread,
            ),
            (
                "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread> </thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>",
                |e| *e == WireError::MissingThread,
            ),
            (
                "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>a!k=</data></x></message>",
                |e| matches!(e, WireError::BadBase64(_)),
            ),
            (
                "<message xmlns='jabber:client' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>",
                |e| *e == WireError::MissingFrom,
            ),
            (
                "<message xmlns='jabber:client' from='a@b/c' type='headline'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>",
                |e| matches!(e, WireError::UnsupportedType(_)),
            ),
            (
                "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data><data>aGk=</data></x></message>",
                |e| *e == WireError::AmbiguousData(2),
            ),
            (
                "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>",
                |e| *e == WireError::AmbiguousX(2),
            ),
            (
                "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><json xmlns='urn:xmpp:json:0'>1</json></x><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>",
                |e| *e == WireError::AmbiguousX(2),
            ),
            (
                "<message xmlns='jabber:client' from='@@@' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>",
                |e| matches!(e, WireError::BadJid { .. }),
            ),
            (
                "<message xmlns='jabber:client' from='room@muc/n' type='error'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
                |e| matches!(e, WireError::ErrorBounce { condition, .. } if condition == "not-acceptable"),
            ),
            (
                "<presence xmlns='jabber:client' from='a@b/c'/>",
                |e| *e == WireError::NotAMessage,
            ),
        ];
        for (xml, check) in cases {
            let err = decode(&parse(xml)).expect_err(xml);
            assert!(check(&err), "{xml}: unexpected {err:?}");
        }
    }

    #[test]
    fn non_realtime_messages_are_not_frames() {
        for xml in [
            "<message xmlns='jabber:client' from='a@b/c' type='chat'><body>hi</body></message>",
            "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><json>{}</json></x></message>",
            "<message xmlns='jabber:client' from='a@b/c' type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        ] {
            assert_eq!(decode(&parse(xml)), Ok(None), "{xml}");
        }
    }

    #[test]
    fn tolerant_of_line_breaks_body_and_missing_type() {
        let el = parse(
            "<message xmlns='jabber:client' from='a@b/c'><body>fallback</body><thread parent='p'>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aG\n  k=</data></x><unknown xmlns='urn:example'/></message>",
        );
        let frame = decode(&el).unwrap().unwrap();
        assert_eq!(frame.data, b"hi");
        assert_eq!(frame.kind, ChatKind::Direct);
        assert_eq!(frame.origin_id, None);
    }

    /// Without the depth check, a message nested 20000 levels deep
    /// overflowed the stack of a 2 MiB thread (Rust's default for spawned
    /// threads) in `Message::try_from`, aborting the process.
    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        let xml = format!(
            "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread>\
             <x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data>{}{}</x></message>",
            "<a>".repeat(20_000),
            "</a>".repeat(20_000)
        );
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let el = parse(&xml);
                let got = decode(&el);
                dismantle(el);
                got
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome, Err(WireError::TooDeep));
        // Shallow enough: still a frame.
        let el = parse(&format!(
            "<message xmlns='jabber:client' from='a@b/c' type='chat'><thread>t</thread>\
             <x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data>{}{}</x></message>",
            "<a>".repeat(MAX_DEPTH - 3),
            "</a>".repeat(MAX_DEPTH - 3)
        ));
        assert!(!too_deep(&el, 1));
        assert_eq!(decode(&el).unwrap().unwrap().data, b"hi");
    }

    #[test]
    fn the_text_scan_counts_depth_as_the_parser_does() {
        let deep = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        let cases = [
            format!("<m xmlns='x'>{}</m>", deep(MAX_DEPTH - 1)),
            format!("<m xmlns='x'>{}</m>", deep(MAX_DEPTH)),
            format!("<m xmlns='x' a='>' b=\"/>'\">{}</m>", deep(MAX_DEPTH - 1)),
            format!("<m xmlns='x'>{}</m>", "<a/>".repeat(200)),
            format!("<m xmlns='x'><![CDATA[<a><a>]]>{}</m>", deep(MAX_DEPTH - 1)),
            format!("<m xmlns='x'>{}<b/></m>", deep(MAX_DEPTH - 1)),
            // The deepest element empty (found by reliability/src/fuzz.rs:
            // the scan did not count it).
            format!(
                "<m xmlns='x'>{}<b/>{}</m>",
                "<a>".repeat(MAX_DEPTH - 1),
                "</a>".repeat(MAX_DEPTH - 1)
            ),
            format!(
                "<m xmlns='x'>{}<b/>{}</m>",
                "<a>".repeat(MAX_DEPTH - 2),
                "</a>".repeat(MAX_DEPTH - 2)
            ),
            format!("<?xml version='1.0'?><m xmlns='x'>{}</m>", deep(MAX_DEPTH)),
        ];
        for xml in &cases {
            let el = parse(xml);
            assert_eq!(text_too_deep(xml), too_deep(&el, 1), "{xml}");
        }
        assert!(!text_too_deep(&cases[0]));
        assert!(text_too_deep(&cases[1]));
        // What the parser refuses (comments, processing instructions) is
        // skipped by the scan all the same.
        let hidden = deep(MAX_DEPTH);
        assert!(!text_too_deep(&format!(
            "<m><!-- {hidden} --><?p {hidden}?><!DOCTYPE m></m>"
        )));
    }

    #[test]
    fn invalid_threads_are_refused_on_send() {
        for t in ["", "  ", "a\u{1}b"] {
            assert_eq!(
                encode(&room(), ChatKind::Group, t, b"", "i").unwrap_err(),
                WireError::InvalidThread
            );
        }
    }
}
