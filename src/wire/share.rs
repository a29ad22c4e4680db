//! Sharing a webxdc app into a chat: the message that gives birth to an
//! app instance, in Cheogram's shape.
//!
//! The `.xdc` file is uploaded (XEP-0363, see [`super::upload`]) and its GET
//! URL is sent as a file message: the URL as `<body>` (marked as a
//! fallback for the out-of-band data, XEP-0428), `<x xmlns='jabber:x:oob'>`
//! (XEP-0066) and a SIMS reference (XEP-0385) whose `<file/>` (XEP-0234)
//! names the file, its size, its media type `application/xdc+zip` and its
//! SHA-256 (XEP-0300). The message's `<thread>` is the instance id that
//! every later realtime payload and status update carries. See
//! `docs/wire-format.md`, "Sharing an app".
//!
//! Cheogram shows a file message as an app only when its media type is
//! `application/xdc+zip`, it has a `<thread>`, and the SIMS file has a hash
//! (its files are stored by content id). A message is read here as a shared
//! app when it has a `<thread>` and a file whose media type is
//! `application/xdc+zip` or `application/webxdc+zip` or whose name ends in
//! `.xdc`.

use base64::Engine as _;
use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::message::{Message, MessageType};

use super::{addressing, new_message, validate_thread, ChatKind, WireError};

/// The media type Cheogram gives `.xdc` files.
pub const XDC_MEDIA_TYPE: &str = "application/xdc+zip";
/// Namespace of XEP-0066 out-of-band data (`<x><url/></x>`).
pub const NS_OOB: &str = "jabber:x:oob";
/// Namespace of XEP-0372 references.
pub const NS_REFERENCE: &str = "urn:xmpp:reference:0";
/// Namespace of XEP-0385 stateless inline media sharing.
pub const NS_SIMS: &str = "urn:xmpp:sims:1";
/// Namespace of the XEP-0234 file description Cheogram writes.
pub const NS_FILE: &str = "urn:xmpp:jingle:apps:file-transfer:5";
/// Namespace of XEP-0300 hashes.
pub const NS_HASHES: &str = "urn:xmpp:hashes:2";
/// Namespace of XEP-0428 fallback indication.
pub const NS_FALLBACK: &str = "urn:xmpp:fallback:0";

/// An attribute name known to be valid.
fn name(n: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(n).unwrap_or_else(|_| unreachable!("{n} is a valid name"))
}

/// Older file-transfer namespaces Cheogram also reads.
const NS_FILE_OLD: [&str; 2] = [
    "urn:xmpp:jingle:apps:file-transfer:4",
    "urn:xmpp:jingle:apps:file-transfer:3",
];

/// An app shared into a chat: where to fetch it and which instance it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedApp {
    /// The app instance: the message's `<thread>`.
    pub thread: String,
    /// Where the `.xdc` can be downloaded (the upload's GET URL).
    pub url: String,
    /// The file name (`board.xdc`), if given.
    pub name: Option<String>,
    /// The size in bytes, if given.
    pub size: Option<u64>,
    /// The media type, if given.
    pub media_type: Option<String>,
    /// The file's SHA-256, if given (Cheogram needs it to show the app).
    pub sha256: Option<Vec<u8>>,
}

/// A shared app as received: the app, who shared it and in which kind of
/// chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAppFrame {
    /// Whether it came through a room or a 1:1 chat.
    pub kind: ChatKind,
    /// The sender (occupant JID in a room).
    pub from: Jid,
    /// The app.
    pub app: SharedApp,
}

/// The message that shares `app` into the chat `to` of `kind`, with stanza
/// id `id`: Cheogram's file message with the app's thread.
pub fn encode_share(
    to: &BareJid,
    kind: ChatKind,
    app: &SharedApp,
    id: &str,
) -> Result<Message, WireError> {
    validate_thread(&app.thread)?;
    if app.url.trim().is_empty() {
        return Err(WireError::Invalid("a shared app needs a URL".into()));
    }
    let mut message = new_message(to, kind, &app.thread, id);
    message
        .bodies
        .insert(xmpp_parsers::message::Lang(String::new()), app.url.clone());

    let mut file = Element::builder("file", NS_FILE);
    let text = |name: &str, value: String| Element::builder(name, NS_FILE).append(value).build();
    file = file.append(text(
        "media-type",
        app.media_type
            .clone()
            .unwrap_or_else(|| XDC_MEDIA_TYPE.to_owned()),
    ));
    if let Some(name) = &app.name {
        file = file.append(text("name", name.clone()));
    }
    if let Some(size) = app.size {
        file = file.append(text("size", size.to_string()));
    }
    if let Some(hash) = &app.sha256 {
        file = file.append(
            Element::builder("hash", NS_HASHES)
                .attr(name("algo"), "sha-256")
                .append(base64::engine::general_purpose::STANDARD.encode(hash))
                .build(),
        );
    }
    let source = Element::builder("reference", NS_REFERENCE)
        .attr(name("type"), "data")
        .attr(name("uri"), app.url.as_str())
        .build();
    let sims = Element::builder("reference", NS_REFERENCE)
        .attr(name("type"), "data")
        .append(
            Element::builder("media-sharing", NS_SIMS)
                .append(file.build())
                .append(Element::builder("sources", NS_SIMS).append(source).build())
                .build(),
        )
        .build();
    let fallback = Element::builder("fallback", NS_FALLBACK)
        .attr(name("for"), NS_OOB)
        .append(Element::builder("body", NS_FALLBACK).build())
        .build();
    let oob = Element::builder("x", NS_OOB)
        .append(
            Element::builder("url", NS_OOB)
                .append(app.url.clone())
                .build(),
        )
        .build();
    message.payloads.extend([sims, fallback, oob]);
    Ok(message)
}

/// Reads a shared app from `m`: `Ok(None)` when `m` shares no app (no
/// file, no thread, or a file that is not a `.xdc`).
pub fn decode_share(m: &Message) -> Result<Option<SharedAppFrame>, WireError> {
    if m.type_ == MessageType::Error || m.thread.is_none() {
        return Ok(None);
    }
    let sims_file = m
        .payloads
        .iter()
        .filter(|p| p.is("reference", NS_REFERENCE))
        .filter_map(|r| r.get_child("media-sharing", NS_SIMS).map(|s| (r, s)))
        .next();
    let oob_url = m
        .payloads
        .iter()
        .find(|p| p.is("x", NS_OOB))
        .and_then(|x| x.get_child("url", NS_OOB))
        .map(|u| u.text().trim().to_owned())
        .filter(|u| !u.is_empty());

    let mut app = SharedApp {
        thread: String::new(),
        url: String::new(),
        name: None,
        size: None,
        media_type: None,
        sha256: None,
    };
    let mut url = oob_url;
    if let Some((reference, sharing)) = sims_file {
        // As Cheogram reads it: the source reference's URI wins over the
        // reference's own and over the out-of-band URL.
        if let Some(uri) = reference.attr("uri") {
            url = Some(uri.to_owned());
        }
        if let Some(uri) = sharing
            .get_child("sources", NS_SIMS)
            .and_then(|s| s.get_child("reference", NS_REFERENCE))
            .and_then(|r| r.attr("uri"))
        {
            url = Some(uri.to_owned());
        }
        let file = std::iter::once(NS_FILE)
            .chain(NS_FILE_OLD)
            .find_map(|ns| sharing.get_child("file", ns));
        if let Some(file) = file {
            let ns = file.ns();
            let text = |name: &str| {
                file.get_child(name, ns.as_str())
                    .map(|e| e.text().trim().to_owned())
                    .filter(|t| !t.is_empty())
            };
            app.name = text("name");
            app.media_type = text("media-type");
            app.size = text("size").and_then(|s| s.parse().ok());
            app.sha256 = file
                .children()
                .filter(|c| c.is("hash", NS_HASHES) && c.attr("algo") == Some("sha-256"))
                .find_map(|c| {
                    base64::engine::general_purpose::STANDARD
                        .decode(c.text().trim())
                        .ok()
                });
        }
    }
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let is_xdc = app
        .media_type
        .as_deref()
        .is_some_and(|t| t == XDC_MEDIA_TYPE || t == "application/webxdc+zip")
        || app
            .name
            .as_deref()
            .or_else(|| url.rsplit('/').next())
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(".xdc"));
    if !is_xdc {
        return Ok(None);
    }
    let a = addressing(m)?;
    app.thread = a.thread;
    app.url = url;
    Ok(Some(SharedAppFrame {
        kind: a.kind,
        from: a.from,
        app,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> SharedApp {
        SharedApp {
            thread: "c0ffee-instance".into(),
            url: "http://127.0.0.1:5280/file_share/abc/board.xdc".into(),
            name: Some("board.xdc".into()),
            size: Some(1234),
            media_type: Some(XDC_MEDIA_TYPE.into()),
            sha256: Some(vec![7; 32]),
        }
    }

    #[test]
    fn a_shared_app_round_trips() {
        let room = BareJid::new("r@muc.example").unwrap();
        let mut m = encode_share(&room, ChatKind::Group, &app(), "id1").unwrap();
        let el = Element::from(m.clone());
        assert_eq!(el.attr("type"), Some("groupchat"));
        assert_eq!(
            el.get_child("body", "jabber:client").unwrap().text(),
            app().url
        );
        assert_eq!(
            el.get_child("thread", "jabber:client").unwrap().text(),
            "c0ffee-instance"
        );
        m.from = Some("r@muc.example/alice".parse().unwrap());
        let got = decode_share(&m).unwrap().unwrap();
        assert_eq!(got.app, app());
        assert_eq!(got.kind, ChatKind::Group);
        assert_eq!(got.from.to_string(), "r@muc.example/alice");
    }

    /// What Cheogram sends (MessageGenerator.generateChat with the SIMS of
    /// Message.FileParams), parsed as written in docs/wire-format.md.
    #[test]
    fn cheogram_s_shape_is_read() {
        let xml = include_str!("../../docs/wire-format.md")
            .split("<!-- cheogram-share -->")
            .nth(1)
            .and_then(|s| s.split("```xml").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("the golden stanza in docs/wire-format.md");
        let el: Element = xml.trim().parse().unwrap();
        let got = decode_share(&Message::try_from(el).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(got.app.thread, "4a1c3f0e-6b7d-4d2a-9a51-0f3e2b8c9d10");
        assert_eq!(got.app.url, "https://upload.example.org/f/Xy7Q/board.xdc");
        assert_eq!(got.app.name.as_deref(), Some("board.xdc"));
        assert_eq!(got.app.size, Some(48213));
        assert_eq!(got.app.sha256.as_ref().map(Vec::len), Some(32));
        assert_eq!(got.from.to_string(), "team@conference.example.org/Juliet");
    }

    #[test]
    fn other_files_and_threadless_files_are_no_app() {
        let room = BareJid::new("r@muc.example").unwrap();
        let mut picture = app();
        picture.name = Some("cat.png".into());
        picture.media_type = Some("image/png".into());
        picture.url = "http://x.example/cat.png".into();
        let mut m = encode_share(&room, ChatKind::Group, &picture, "id1").unwrap();
        m.from = Some("r@muc.example/alice".parse().unwrap());
        assert_eq!(decode_share(&m).unwrap(), None);

        let mut m = encode_share(&room, ChatKind::Group, &app(), "id2").unwrap();
        m.from = Some("r@muc.example/alice".parse().unwrap());
        m.thread = None;
        assert_eq!(decode_share(&m).unwrap(), None);

        // A plain .xdc link with out-of-band data only is an app too.
        let el: Element = "<message xmlns='jabber:client' type='groupchat' from='r@muc.example/bob' to='me@example'>\
            <body>http://h.example/a.xdc</body><thread>t1</thread>\
            <x xmlns='jabber:x:oob'><url>http://h.example/a.xdc</url></x></message>"
            .parse()
            .unwrap();
        let got = decode_share(&Message::try_from(el).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.app.thread.as_str(), got.app.url.as_str()),
            ("t1", "http://h.example/a.xdc")
        );
    }

    #[test]
    fn bad_shares_are_refused() {
        let room = BareJid::new("r@muc.example").unwrap();
        let mut a = app();
        a.thread = " ".into();
        assert_eq!(
            encode_share(&room, ChatKind::Group, &a, "i"),
            Err(WireError::InvalidThread)
        );
        let mut a = app();
        a.url = String::new();
        assert!(encode_share(&room, ChatKind::Group, &a, "i").is_err());
    }
}
