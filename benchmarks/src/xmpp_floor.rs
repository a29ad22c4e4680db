//! The XMPP floor (`xmpp-floor`): the real client stack (this library,
//! tokio-xmpp, the engine) against a minimal in-process XMPP server
//! written for the benchmark, so that the table can tell what the servers
//! add (Prosody or ejabberd − floor) from what our client stack costs
//! (floor − `tcp-relay`).
//!
//! # The server ([`XmppFloor`])
//!
//! It does what the library needs to get online and use a room, and
//! nothing else, on 127.0.0.1 and a free port, on the caller's runtime:
//!
//! * the c2s stream in plaintext (as the benchmark's harnesses use it);
//! * SASL PLAIN, accepting **any** user name and **any** password (every
//!   account exists; like Prosody's `authentication = "insecure"`);
//! * resource binding (the requested resource, or one it makes up);
//! * no XEP-0198 stream management: the library works without it (its
//!   send window then lets a stanza go once it is written to the socket,
//!   see `src/client/actor.rs`), and a floor should not pay for acks;
//! * XMPP pings to the server are answered (tokio-xmpp pings when the
//!   stream is idle and stream management is off); every other IQ of
//!   type get or set gets a `service-unavailable` error, so nothing waits
//!   for an answer that never comes;
//! * rooms on [`MUC_DOMAIN`], created on the first join and gone with
//!   their last occupant: the join presence is answered as a MUC does
//!   (the other occupants' presences, the newcomer's presence to them,
//!   then the self-presence with status 110); a taken nick is refused
//!   with `conflict`; leaving (or the end of the stream) sends the
//!   unavailable presences;
//! * each groupchat message to a room is reflected to every occupant, the
//!   sender included (the library recognises its own echo), stamped
//!   `from` = `room@muc/nick` and `to` = the occupant, as a MUC does. A
//!   message from a non-occupant bounces with `not-acceptable`, any other
//!   message with `service-unavailable`. Nothing is stored.
//!
//! # How it is fast
//!
//! What a good realtime server would do: no DOM per message. Every byte
//! is checked by rxml's raw parser (the parser tokio-xmpp uses), which
//! reports how many bytes each event covers; this module adds the
//! namespace checks rxml's raw layer leaves out (every prefix declared,
//! no duplicate attribute) and a size and depth bound. A message is then
//! forwarded as the bytes it arrived as: the start tag is rebuilt with
//! the room's `from` and the receiver's `to` (the client's own `from` and
//! `to` dropped, every other attribute kept byte for byte), and the rest
//! of the stanza is shared, not copied, by every receiver (one
//! reference-counted buffer split off the read buffer). That is safe
//! because the client's stream may declare nothing but the default
//! namespace `jabber:client` and the `stream` prefix, exactly what this
//! server's stream to each receiver declares: the bytes mean the same on
//! the other stream. Only presences, IQs and the SASL exchange (a few per
//! connection) are built into elements (minidom's tree builder).
//!
//! Sockets have Nagle off (`TCP_NODELAY`). Each connection has one writer
//! task behind a bounded queue ([`QUEUE`] stanzas): a reader that
//! forwards to a full queue waits, so a slow receiver slows the sender
//! down through TCP (back-pressure), nothing is dropped, and memory stays
//! bounded. The writer writes whatever is queued in one vectored write
//! (`writev`), so a stanza costs at most one write per receiver.
//!
//! Bad input (it only ever talks to our own client, but still) ends the
//! stream with a stream error naming the condition (`not-well-formed`,
//! `invalid-namespace`, `policy-violation` for a stanza over
//! [`MAX_STANZA`] bytes or nested deeper than [`MAX_DEPTH`], …); nothing
//! panics.
//!
//! # The harness ([`XmppFloorHarness`])
//!
//! The conformance suite's harness over that server, with the library's
//! [`Client`] exactly as `spec_backends::xmpp::XmppHarness` uses it
//! (that harness is tied to a `TestServer`): a participant is an account,
//! a member a connected client (a device), a chat a room every member
//! enters when the chat is made. `restart` is not supported (there is no
//! process to restart); `tests/xmpp_floor.rs` runs the whole conformance
//! suite on it.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex as SyncMutex;
use spec_tests::harness::{Capabilities, Harness, HarnessError, JoinFailure, Member};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webxdc_realtime_xmpp::jid::{BareJid, Jid};
use webxdc_realtime_xmpp::{Client, Config, GroupChat, JoinError};
use xmpp_parsers::minidom::rxml::bytes::{Buf, Bytes, BytesMut};
use xmpp_parsers::minidom::rxml::error::EndOrError;
use xmpp_parsers::minidom::rxml::{NcName, Parse, RawEvent, RawParser};
use xmpp_parsers::minidom::tree_builder::TreeBuilder;
use xmpp_parsers::minidom::Element;

/// The server's domain: every account is `name@localhost`.
pub const DOMAIN: &str = "localhost";
/// The room service's domain.
pub const MUC_DOMAIN: &str = "conference.localhost";
/// The largest stanza accepted, in bytes as sent (a 128000-byte payload
/// is a stanza of about 171 KB; Prosody's default limit is 256 KiB).
pub const MAX_STANZA: usize = 1024 * 1024;
/// The deepest element nesting accepted (the stream root is 1, a stanza
/// 2); the library's own stanzas nest 3 deep.
pub const MAX_DEPTH: usize = 64;
/// Stanzas queued per connection before a forwarding reader waits.
pub const QUEUE: usize = 1024;
/// Attributes accepted on one element (a bound on the parser's state
/// between two stanzas).
const MAX_ATTRIBUTES: usize = 64;
/// Room to read into, at least, before each read.
const READ_CHUNK: usize = 64 * 1024;
/// Queued items one vectored write takes at most.
const MAX_BATCH: usize = 64;
/// How long the harness's shutdown waits for each client's clean close.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

const NS_CLIENT: &str = "jabber:client";
const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_PING: &str = "urn:xmpp:ping";
const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

// ===================================================================
// The server
// ===================================================================

/// The in-process XMPP server. Stops (every connection with it) when
/// dropped.
pub struct XmppFloor {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    connections: Arc<SyncMutex<Vec<JoinHandle<()>>>>,
}

impl XmppFloor {
    /// Starts the server on 127.0.0.1 and a free port, on the current
    /// tokio runtime.
    pub async fn start() -> io::Result<XmppFloor> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = Arc::new(Server::default());
        let connections: Arc<SyncMutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let connections = connections.clone();
            tokio::spawn(async move {
                loop {
                    let stream = match listener.accept().await {
                        Ok((s, _)) => s,
                        // Out of descriptors and the like: try again
                        // rather than stop serving.
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let id = server.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
                    let task = tokio::spawn(connection(stream, server.clone(), id));
                    let mut list = connections.lock();
                    list.retain(|t| !t.is_finished());
                    list.push(task);
                }
            })
        };
        Ok(XmppFloor {
            addr,
            accept,
            connections,
        })
    }

    /// Where clients connect (plaintext c2s).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for XmppFloor {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.connections.lock().drain(..) {
            t.abort();
        }
    }
}

/// What every connection shares: the rooms.
#[derive(Default)]
struct Server {
    next_conn: AtomicU64,
    /// Rooms by bare JID (as text).
    rooms: SyncMutex<HashMap<String, Room>>,
}

struct Room {
    /// Copied on every join and leave (rare), shared by every message
    /// (frequent): a message takes a reference under the lock, not a copy.
    occupants: Arc<Vec<Occupant>>,
}

#[derive(Clone)]
struct Occupant {
    conn: u64,
    nick: String,
    /// The occupant's full JID, escaped for an attribute value.
    jid_attr: String,
    tx: mpsc::Sender<Out>,
}

/// One item of a connection's write queue.
enum Out {
    /// Bytes written as they are.
    Raw(Bytes),
    /// A reflected message: its start tag for this receiver and the rest
    /// of it, shared by all receivers.
    Msg { head: Vec<u8>, body: Bytes },
    /// Close the socket after what came before.
    Close,
}

/// Writes what is queued, as much as is queued at once in one vectored
/// write, until the queue ends or a write fails.
async fn writer(mut w: OwnedWriteHalf, mut rx: mpsc::Receiver<Out>) {
    let mut batch: Vec<Out> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let close = batch.iter().position(|o| matches!(o, Out::Close));
        let items = &batch[..close.unwrap_or(batch.len())];
        if write_batch(&mut w, items).await.is_err() {
            return;
        }
        if close.is_some() {
            let _ = w.shutdown().await;
            return;
        }
        batch.clear();
    }
    let _ = w.shutdown().await;
}

async fn write_batch(w: &mut OwnedWriteHalf, items: &[Out]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(items.len() * 2);
    for o in items {
        match o {
            Out::Raw(b) => slices.push(IoSlice::new(b)),
            Out::Msg { head, body } => {
                slices.push(IoSlice::new(head));
                if !body.is_empty() {
                    slices.push(IoSlice::new(body));
                }
            }
            Out::Close => {}
        }
    }
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Escapes `s` for an attribute value (quoted with `'`) or text.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

// ----- parsing: rxml's raw events, with their byte spans -----

/// Why a stream ends.
enum End {
    /// The client closed the stream (`</stream:stream>`).
    Closed,
    /// The socket ended or failed, or our writer is gone.
    Gone,
    /// A violation: the stream ends with this stream error condition.
    Error(&'static str),
}

impl From<io::Error> for End {
    fn from(_: io::Error) -> Self {
        End::Gone
    }
}

/// An attribute as read, with the bytes it covers (its leading
/// whitespace included).
struct Attr {
    prefix: Option<String>,
    name: String,
    value: String,
    start: usize,
    end: usize,
}

/// An element's start tag while it is read.
struct Head {
    prefix: Option<String>,
    name: String,
    attrs: Vec<Attr>,
}

/// A top-level element (a stanza or a SASL nonza) as read.
struct Stanza {
    name: String,
    /// Whether the element has no prefix (the fast path forwards only
    /// such messages).
    unprefixed: bool,
    /// Its namespace.
    ns: String,
    attrs: Vec<Attr>,
    /// Offsets, relative to the start of [`bytes`](Self::bytes): the end
    /// of the element name, and of the start tag.
    name_end: usize,
    head_end: usize,
    /// The whole element as it arrived.
    bytes: Bytes,
    /// The element as a tree: built for everything but `<message/>`.
    tree: Option<Element>,
}

impl Stanza {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.prefix.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// What the reader hands the connection.
// Not boxed: an item is moved once per stanza, and a box would be one more
// allocation per stanza on the floor's hot path.
#[allow(clippy::large_enum_variant)]
enum Item {
    /// The client's stream header: its attributes.
    Header(Vec<Attr>),
    /// A stanza, and the stream bytes it covers.
    Stanza(Stanza, (usize, usize)),
    /// `</stream:stream>`.
    End,
}

/// An element being read inside the current top-level element.
struct Top {
    start: usize,
    name: String,
    unprefixed: bool,
    ns: String,
    attrs: Vec<Attr>,
    name_end: usize,
    head_end: usize,
    tree: Option<TreeBuilder>,
}

/// The parsing state of one stream (a new one after SASL).
struct Xml {
    raw: RawParser,
    /// Absolute stream offset up to which events account for the bytes.
    pos: usize,
    depth: usize,
    /// Prefixed namespace declarations in scope: (depth, prefix, URI).
    decls: Vec<(usize, String, String)>,
    /// Default namespace declarations in scope: (depth, URI).
    defaults: Vec<(usize, String)>,
    head: Option<Head>,
    top: Option<Top>,
}

impl Xml {
    fn new(pos: usize) -> Xml {
        Xml {
            raw: RawParser::new(),
            pos,
            depth: 0,
            decls: Vec::new(),
            defaults: Vec::new(),
            head: None,
            top: None,
        }
    }

    fn resolve(&self, prefix: Option<&str>) -> Option<&str> {
        match prefix {
            None => Some(
                self.defaults
                    .last()
                    .map(|(_, ns)| ns.as_str())
                    .unwrap_or(""),
            ),
            Some("xml") => Some(NS_XML),
            Some(p) => self
                .decls
                .iter()
                .rev()
                .find(|(_, q, _)| q == p)
                .map(|(_, _, ns)| ns.as_str()),
        }
    }

    /// One raw event covering the stream bytes `start..end`. Returns an
    /// item when one is complete; the stanza's bytes are cut from the
    /// read buffer by the caller.
    fn event(&mut self, ev: RawEvent, start: usize, end: usize) -> Result<Option<Item>, End> {
        let tree = |top: &mut Option<Top>, ev: RawEvent| -> Result<(), End> {
            if let Some(t) = top.as_mut().and_then(|t| t.tree.as_mut()) {
                t.process_event(ev)
                    .map_err(|_| End::Error("invalid-namespace"))?;
            }
            Ok(())
        };
        match ev {
            RawEvent::XmlDeclaration(..) => Ok(None),
            RawEvent::ElementHeadOpen(m, (prefix, name)) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(End::Error("policy-violation"));
                }
                let head = Head {
                    prefix: prefix.as_ref().map(|p| p.to_string()),
                    name: name.to_string(),
                    attrs: Vec::new(),
                };
                if self.depth == 2 {
                    // A new stanza. Everything but a message is built into
                    // a tree, with the stream's declarations it relies on
                    // (the tree builder knows no parent).
                    let build = !(prefix.is_none() && name.as_str() == "message");
                    let mut t = build.then(TreeBuilder::new);
                    if let Some(t) = t.as_mut() {
                        let attr = |p: Option<&str>, n: &str, v: &str| -> Result<RawEvent, End> {
                            let bad = |_| End::Error("internal-server-error");
                            Ok(RawEvent::Attribute(
                                m,
                                (p.map(NcName::try_from).transpose().map_err(bad)?, {
                                    NcName::try_from(n).map_err(bad)?
                                }),
                                v.to_owned(),
                            ))
                        };
                        let open = RawEvent::ElementHeadOpen(m, (prefix, name));
                        for e in [
                            open,
                            attr(None, "xmlns", NS_CLIENT)?,
                            attr(Some("xmlns"), "stream", NS_STREAMS)?,
                        ] {
                            t.process_event(e)
                                .map_err(|_| End::Error("invalid-namespace"))?;
                        }
                    }
                    self.top = Some(Top {
                        start,
                        name: head.name.clone(),
                        unprefixed: head.prefix.is_none(),
                        ns: String::new(),
                        attrs: Vec::new(),
                        name_end: end - start,
                        head_end: 0,
                        tree: t,
                    });
                } else {
                    tree(&mut self.top, RawEvent::ElementHeadOpen(m, (prefix, name)))?;
                }
                self.head = Some(head);
                Ok(None)
            }
            RawEvent::Attribute(m, (prefix, name), value) => {
                let head = self.head.as_mut().ok_or(End::Error("not-well-formed"))?;
                if head.attrs.len() >= MAX_ATTRIBUTES {
                    return Err(End::Error("policy-violation"));
                }
                match (prefix.as_ref().map(|p| p.as_str()), name.as_str()) {
                    (Some("xmlns"), p) => {
                        self.decls.push((self.depth, p.to_owned(), value.clone()))
                    }
                    (None, "xmlns") => self.defaults.push((self.depth, value.clone())),
                    _ => {}
                }
                head.attrs.push(Attr {
                    prefix: prefix.as_ref().map(|p| p.to_string()),
                    name: name.to_string(),
                    value: value.clone(),
                    start,
                    end,
                });
                tree(&mut self.top, RawEvent::Attribute(m, (prefix, name), value))?;
                Ok(None)
            }
            RawEvent::ElementHeadClose(m) => {
                let head = self.head.take().ok_or(End::Error("not-well-formed"))?;
                // Namespaces in XML: every prefix declared (rxml's raw
                // parser does not check), no attribute twice.
                let ns = self
                    .resolve(head.prefix.as_deref())
                    .ok_or(End::Error("invalid-namespace"))?
                    .to_owned();
                let mut seen: Vec<(&str, &str)> = Vec::with_capacity(head.attrs.len());
                for a in &head.attrs {
                    let key_ns = match a.prefix.as_deref() {
                        Some("xmlns") => "xmlns:",
                        None if a.name == "xmlns" => "xmlns",
                        None => "",
                        Some(p) => self
                            .resolve(Some(p))
                            .ok_or(End::Error("invalid-namespace"))?,
                    };
                    if seen.contains(&(key_ns, a.name.as_str())) {
                        return Err(End::Error("not-well-formed"));
                    }
                    seen.push((key_ns, a.name.as_str()));
                }
                drop(seen);
                match self.depth {
                    1 => {
                        // The stream header: only what our streams to the
                        // other clients declare too, so that a forwarded
                        // stanza means the same there.
                        if head.prefix.as_deref() != Some("stream")
                            || head.name != "stream"
                            || ns != NS_STREAMS
                        {
                            return Err(End::Error("invalid-namespace"));
                        }
                        for a in &head.attrs {
                            let ok = match (a.prefix.as_deref(), a.name.as_str()) {
                                (Some("xmlns"), "stream") => a.value == NS_STREAMS,
                                (Some("xmlns"), _) => false,
                                (None, "xmlns") => a.value == NS_CLIENT,
                                _ => true,
                            };
                            if !ok {
                                return Err(End::Error("invalid-namespace"));
                            }
                        }
                        if self.resolve(None) != Some(NS_CLIENT) {
                            return Err(End::Error("invalid-namespace"));
                        }
                        Ok(Some(Item::Header(head.attrs)))
                    }
                    2 => {
                        let top = self.top.as_mut().ok_or(End::Error("not-well-formed"))?;
                        top.ns = ns;
                        top.attrs = head.attrs;
                        top.head_end = end - top.start;
                        tree(&mut self.top, RawEvent::ElementHeadClose(m))?;
                        Ok(None)
                    }
                    _ => {
                        tree(&mut self.top, RawEvent::ElementHeadClose(m))?;
                        Ok(None)
                    }
                }
            }
            RawEvent::ElementFoot(m) => {
                tree(&mut self.top, RawEvent::ElementFoot(m))?;
                let depth = self.depth;
                self.decls.retain(|(d, _, _)| *d != depth);
                self.defaults.retain(|(d, _)| *d != depth);
                self.depth = depth.saturating_sub(1);
                match self.depth {
                    0 => Ok(Some(Item::End)),
                    1 => {
                        let top = self.top.take().ok_or(End::Error("not-well-formed"))?;
                        let tree = match top.tree {
                            Some(mut t) => {
                                Some(t.root.take().ok_or(End::Error("not-well-formed"))?)
                            }
                            None => None,
                        };
                        let span = (top.start, end);
                        let attrs = top
                            .attrs
                            .into_iter()
                            .map(|mut a| {
                                a.start -= top.start;
                                a.end -= top.start;
                                a
                            })
                            .collect();
                        // The bytes are cut out of the read buffer by the
                        // caller, which owns it.
                        let stanza = Stanza {
                            name: top.name,
                            unprefixed: top.unprefixed,
                            ns: top.ns,
                            attrs,
                            name_end: top.name_end,
                            head_end: top.head_end,
                            bytes: Bytes::new(),
                            tree,
                        };
                        Ok(Some(Item::Stanza(stanza, span)))
                    }
                    _ => Ok(None),
                }
            }
            RawEvent::Text(m, text) => {
                // Text between stanzas (whitespace keep-alives) is
                // nothing; inside a stanza it goes to the tree, if any.
                tree(&mut self.top, RawEvent::Text(m, text))?;
                Ok(None)
            }
        }
    }
}

// ----- one connection -----

/// Where a connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before SASL.
    Auth,
    /// Authenticated, before resource binding.
    Bind,
    /// Bound: stanzas flow.
    Session,
}

struct Conn {
    id: u64,
    server: Arc<Server>,
    reader: OwnedReadHalf,
    tx: mpsc::Sender<Out>,
    /// Stream bytes from absolute offset `base` on; `fed` is how far the
    /// parser has read.
    buf: BytesMut,
    base: usize,
    fed: usize,
    xml: Xml,
    phase: Phase,
    header_sent: bool,
    /// The authenticated account (after SASL) and the bound JID.
    user: Option<BareJid>,
    jid: Option<Jid>,
    /// The bound JID, escaped for an attribute value.
    jid_attr: String,
    /// Rooms this connection is in (their keys in [`Server::rooms`]).
    rooms: Vec<String>,
}

async fn connection(stream: TcpStream, server: Arc<Server>, id: u64) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let (reader, w) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let writer = tokio::spawn(writer(w, rx));
    let mut conn = Conn {
        id,
        server,
        reader,
        tx,
        buf: BytesMut::with_capacity(READ_CHUNK),
        base: 0,
        fed: 0,
        xml: Xml::new(0),
        phase: Phase::Auth,
        header_sent: false,
        user: None,
        jid: None,
        jid_attr: String::new(),
        rooms: Vec::new(),
    };
    let end = conn.run().await;
    conn.leave_all(false).await;
    let goodbye = match end {
        End::Closed => Some("</stream:stream>".to_owned()),
        End::Gone => None,
        End::Error(condition) => {
            let mut s = String::new();
            if !conn.header_sent {
                s.push_str(&stream_header(conn.id));
            }
            s.push_str(&format!(
                "<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                 </stream:error></stream:stream>"
            ));
            Some(s)
        }
    };
    if let Some(g) = goodbye {
        let _ = conn.tx.send(Out::Raw(Bytes::from(g))).await;
    }
    let _ = conn.tx.send(Out::Close).await;
    drop(conn);
    let _ = writer.await;
}

fn stream_header(id: u64) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' id='floor-{id}' from='{DOMAIN}' \
         version='1.0'>"
    )
}

impl Conn {
    async fn run(&mut self) -> End {
        loop {
            let item = match self.next_item().await {
                Ok(i) => i,
                Err(e) => return e,
            };
            let r = match item {
                Item::End => return End::Closed,
                Item::Header(attrs) => self.header(&attrs).await,
                Item::Stanza(s, _) => match self.phase {
                    Phase::Auth => self.auth(s).await,
                    Phase::Bind => self.bind(s).await,
                    Phase::Session => self.stanza(s).await,
                },
            };
            if let Err(e) = r {
                return e;
            }
        }
    }

    async fn send(&self, out: Out) -> Result<(), End> {
        self.tx.send(out).await.map_err(|_| End::Gone)
    }

    async fn send_str(&self, s: String) -> Result<(), End> {
        self.send(Out::Raw(Bytes::from(s))).await
    }

    /// The next complete item of the stream, reading as needed.
    async fn next_item(&mut self) -> Result<Item, End> {
        loop {
            let Some(off) = self.fed.checked_sub(self.base) else {
                return Err(End::Error("internal-server-error"));
            };
            let mut slice = self.buf.get(off..).unwrap_or(&[]);
            let before = slice.len();
            let r = self.xml.raw.parse(&mut slice, false);
            self.fed += before - slice.len();
            match r {
                Err(EndOrError::NeedMoreData) => self.read_more().await?,
                Err(EndOrError::Error(_)) => return Err(End::Error("not-well-formed")),
                // Only at the end of input, which is never claimed here.
                Ok(None) => return Err(End::Gone),
                Ok(Some(ev)) => {
                    let start = self.xml.pos;
                    let end = start + ev.metrics().len();
                    self.xml.pos = end;
                    let item = self.xml.event(ev, start, end)?;
                    match item {
                        Some(Item::Stanza(mut s, (from, to))) => {
                            s.bytes = self.cut(from, to)?;
                            return Ok(Item::Stanza(s, (from, to)));
                        }
                        other => {
                            // Between stanzas nothing before `pos` is needed.
                            if self.xml.top.is_none() {
                                self.discard_to(self.xml.pos)?;
                            }
                            if let Some(i) = other {
                                return Ok(i);
                            }
                        }
                    }
                }
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), End> {
        if let Some(top) = &self.xml.top {
            if self.fed.saturating_sub(top.start) > MAX_STANZA {
                return Err(End::Error("policy-violation"));
            }
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        match self.reader.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => Err(End::Gone),
            Ok(_) => Ok(()),
        }
    }

    /// Drops the buffered bytes before absolute offset `to`.
    fn discard_to(&mut self, to: usize) -> Result<(), End> {
        let n = to
            .checked_sub(self.base)
            .filter(|n| *n <= self.buf.len())
            .ok_or(End::Error("internal-server-error"))?;
        self.buf.advance(n);
        self.base = to;
        Ok(())
    }

    /// Takes the stream bytes `from..to` out of the buffer, without a copy.
    fn cut(&mut self, from: usize, to: usize) -> Result<Bytes, End> {
        self.discard_to(from)?;
        let n = to
            .checked_sub(from)
            .filter(|n| *n <= self.buf.len())
            .ok_or(End::Error("internal-server-error"))?;
        let bytes = self.buf.split_to(n).freeze();
        self.base = to;
        // Whatever rxml reported, a stanza is `<…>`: never forward a
        // misaligned cut.
        if bytes.first() != Some(&b'<') || bytes.last() != Some(&b'>') {
            return Err(End::Error("internal-server-error"));
        }
        Ok(bytes)
    }

    async fn header(&mut self, attrs: &[Attr]) -> Result<(), End> {
        let to = attrs
            .iter()
            .find(|a| a.prefix.is_none() && a.name == "to")
            .map(|a| a.value.as_str());
        let mut out = stream_header(self.id);
        self.header_sent = true;
        if to.is_some_and(|t| t != DOMAIN) {
            return Err(End::Error("host-unknown"));
        }
        out.push_str("<stream:features>");
        match self.phase {
            Phase::Auth => out.push_str(
                "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                 <mechanism>PLAIN</mechanism></mechanisms>",
            ),
            // No stream management offered: see the module docs.
            _ => out.push_str("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
        }
        out.push_str("</stream:features>");
        self.send_str(out).await
    }

    /// SASL PLAIN with any user name and password.
    async fn auth(&mut self, s: Stanza) -> Result<(), End> {
        let failure = |condition: &str| {
            format!("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><{condition}/></failure>")
        };
        let Some(el) = s.tree.filter(|e| e.is("auth", NS_SASL)) else {
            return Err(End::Error("not-authorized"));
        };
        if el.attr("mechanism") != Some("PLAIN") {
            return self.send_str(failure("invalid-mechanism")).await;
        }
        let user = xmpp_parsers::sasl::Auth::try_from(el)
            .ok()
            .and_then(|a| {
                // authzid NUL authcid NUL password
                let mut parts = a.data.split(|b| *b == 0);
                let _authzid = parts.next()?;
                let authcid = std::str::from_utf8(parts.next()?).ok()?.to_owned();
                parts.next()?;
                parts.next().is_none().then_some(authcid)
            })
            .and_then(|u| BareJid::new(&format!("{u}@{DOMAIN}")).ok());
        let Some(user) = user else {
            return self.send_str(failure("not-authorized")).await;
        };
        self.user = Some(user);
        self.send_str("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".into())
            .await?;
        // The client restarts the stream: a new document from here.
        self.phase = Phase::Bind;
        self.fed = self.xml.pos;
        self.xml = Xml::new(self.xml.pos);
        Ok(())
    }

    async fn bind(&mut self, s: Stanza) -> Result<(), End> {
        let el = s
            .tree
            .filter(|e| e.is("iq", NS_CLIENT))
            .ok_or(End::Error("not-authorized"))?;
        let id = el.attr("id").unwrap_or_default().to_owned();
        let query = el
            .get_child("bind", NS_BIND)
            .filter(|_| el.attr("type") == Some("set"));
        let (Some(query), Some(user)) = (query, self.user.clone()) else {
            return self.iq_error(&el, "not-authorized", "auth").await;
        };
        let resource = query
            .get_child("resource", NS_BIND)
            .map(|r| r.text())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| format!("floor-{}", self.id));
        let Ok(full) = user.with_resource_str(&resource) else {
            return self.iq_error(&el, "bad-request", "modify").await;
        };
        let jid = esc(&full.to_string());
        self.jid = Some(Jid::from(full));
        self.jid_attr = jid.clone();
        self.phase = Phase::Session;
        self.send_str(format!(
            "<iq type='result' id='{}'><bind xmlns='{NS_BIND}'><jid>{jid}</jid></bind></iq>",
            esc(&id)
        ))
        .await
    }

    /// An error answer to an IQ (never to a result or an error).
    async fn iq_error(&self, el: &Element, condition: &str, kind: &str) -> Result<(), End> {
        if matches!(el.attr("type"), Some("result" | "error")) {
            return Ok(());
        }
        let Some(id) = el.attr("id") else {
            return Ok(());
        };
        let from = el
            .attr("to")
            .map(|t| format!(" from='{}'", esc(t)))
            .unwrap_or_default();
        let to = if self.jid_attr.is_empty() {
            String::new()
        } else {
            format!(" to='{}'", self.jid_attr)
        };
        self.send_str(format!(
            "<iq type='error' id='{}'{from}{to}><error type='{kind}'><{condition} \
             xmlns='{NS_STANZAS}'/></error></iq>",
            esc(id)
        ))
        .await
    }

    async fn stanza(&mut self, s: Stanza) -> Result<(), End> {
        if s.ns != NS_CLIENT {
            return Err(End::Error("unsupported-stanza-type"));
        }
        if s.name == "message" && s.unprefixed && s.tree.is_none() {
            return self.message(s).await;
        }
        let Some(el) = s.tree else {
            return Err(End::Error("unsupported-stanza-type"));
        };
        match el.name() {
            "presence" => self.presence(&el).await,
            "iq" => self.iq(&el).await,
            _ => Err(End::Error("unsupported-stanza-type")),
        }
    }

    async fn iq(&self, el: &Element) -> Result<(), End> {
        let to_server = match el.attr("to") {
            None => true,
            Some(t) => t == DOMAIN || self.user.as_ref().is_some_and(|u| u.to_string() == t),
        };
        let is_get = el.attr("type") == Some("get");
        if to_server && is_get && el.get_child("ping", NS_PING).is_some() {
            let Some(id) = el.attr("id") else {
                return Ok(());
            };
            let from = el
                .attr("to")
                .map(|t| format!(" from='{}'", esc(t)))
                .unwrap_or_default();
            return self
                .send_str(format!(
                    "<iq type='result' id='{}'{from} to='{}'/>",
                    esc(id),
                    self.jid_attr
                ))
                .await;
        }
        self.iq_error(el, "service-unavailable", "cancel").await
    }

    // ----- rooms -----

    async fn presence(&mut self, el: &Element) -> Result<(), End> {
        let available = match el.attr("type") {
            None => true,
            Some("unavailable") => false,
            // Subscriptions, probes, errors: no roster here.
            Some(_) => return Ok(()),
        };
        let Some(to) = el.attr("to") else {
            // Broadcast presence: going offline leaves every room.
            if !available {
                self.leave_all(true).await;
            }
            return Ok(());
        };
        let Ok(to) = Jid::new(to) else {
            return Ok(());
        };
        if to.domain().as_str() != MUC_DOMAIN || to.node().is_none() {
            return Ok(());
        }
        let room = to.to_bare().to_string();
        match (to.resource(), available) {
            (Some(nick), true) => self.join(room, nick.as_str().to_owned()).await,
            (_, false) => self.leave(&room, true).await,
            (None, true) => Ok(()),
        }
    }

    async fn join(&mut self, room: String, nick: String) -> Result<(), End> {
        let me = Occupant {
            conn: self.id,
            nick: nick.clone(),
            jid_attr: self.jid_attr.clone(),
            tx: self.tx.clone(),
        };
        enum Joined {
            New(Arc<Vec<Occupant>>),
            Again,
            Conflict,
        }
        let joined = {
            let mut rooms = self.server.rooms.lock();
            let r = rooms.entry(room.clone()).or_insert_with(|| Room {
                occupants: Arc::new(Vec::new()),
            });
            if let Some(o) = r.occupants.iter().find(|o| o.conn == self.id) {
                // Already in: a presence update (a changed nick is not
                // supported and keeps the old one).
                let _ = o;
                Joined::Again
            } else if r.occupants.iter().any(|o| o.nick == nick) {
                Joined::Conflict
            } else {
                let others = r.occupants.clone();
                let mut list = (*others).clone();
                list.push(me);
                r.occupants = Arc::new(list);
                Joined::New(others)
            }
        };
        let room_nick = |n: &str| esc(&format!("{room}/{n}"));
        let item = |role: &str| {
            format!(
                "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' \
                 role='{role}'/>"
            )
        };
        match joined {
            Joined::Conflict => {
                self.send_str(format!(
                    "<presence type='error' from='{}' to='{}'><x xmlns='{NS_MUC}'/>\
                     <error type='cancel'><conflict xmlns='{NS_STANZAS}'/></error></presence>",
                    room_nick(&nick),
                    self.jid_attr
                ))
                .await
            }
            Joined::Again => {
                let own = self.own_nick(&room).unwrap_or(nick);
                self.send_str(format!(
                    "<presence from='{}' to='{}'>{}<status code='110'/></x></presence>",
                    room_nick(&own),
                    self.jid_attr,
                    item("participant")
                ))
                .await
            }
            Joined::New(others) => {
                self.rooms.push(room.clone());
                // As a MUC does: the others to the newcomer, the newcomer
                // to the others, then the newcomer's own presence.
                for o in others.iter() {
                    self.send_str(format!(
                        "<presence from='{}' to='{}'>{}</x></presence>",
                        room_nick(&o.nick),
                        self.jid_attr,
                        item("participant")
                    ))
                    .await?;
                }
                for o in others.iter() {
                    let p = format!(
                        "<presence from='{}' to='{}'>{}</x></presence>",
                        room_nick(&nick),
                        o.jid_attr,
                        item("participant")
                    );
                    // A departed occupant's queue is closed: skip it.
                    let _ = o.tx.send(Out::Raw(Bytes::from(p))).await;
                }
                self.send_str(format!(
                    "<presence from='{}' to='{}'>{}<status code='110'/></x></presence>",
                    room_nick(&nick),
                    self.jid_attr,
                    item("participant")
                ))
                .await
            }
        }
    }

    fn own_nick(&self, room: &str) -> Option<String> {
        let rooms = self.server.rooms.lock();
        let r = rooms.get(room)?;
        r.occupants
            .iter()
            .find(|o| o.conn == self.id)
            .map(|o| o.nick.clone())
    }

    /// Takes this connection out of `room`; tells the others, and itself
    /// if `tell_self`.
    async fn leave(&mut self, room: &str, tell_self: bool) -> Result<(), End> {
        let left = {
            let mut rooms = self.server.rooms.lock();
            let Some(r) = rooms.get_mut(room) else {
                return Ok(());
            };
            let Some(me) = r.occupants.iter().find(|o| o.conn == self.id).cloned() else {
                return Ok(());
            };
            let others: Vec<Occupant> = r
                .occupants
                .iter()
                .filter(|o| o.conn != self.id)
                .cloned()
                .collect();
            if others.is_empty() {
                rooms.remove(room);
            } else {
                r.occupants = Arc::new(others.clone());
            }
            (me, others)
        };
        self.rooms.retain(|r| r != room);
        let (me, others) = left;
        let from = esc(&format!("{room}/{}", me.nick));
        let unavailable = |to: &str, own: bool| {
            format!(
                "<presence type='unavailable' from='{from}' to='{to}'><x \
                 xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' \
                 role='none'/>{}</x></presence>",
                if own { "<status code='110'/>" } else { "" }
            )
        };
        for o in &others {
            let _ =
                o.tx.send(Out::Raw(Bytes::from(unavailable(&o.jid_attr, false))))
                    .await;
        }
        if tell_self {
            self.send_str(unavailable(&self.jid_attr, true)).await?;
        }
        Ok(())
    }

    async fn leave_all(&mut self, tell_self: bool) {
        for room in std::mem::take(&mut self.rooms) {
            // Only our own queue can fail, and then nobody listens.
            let _ = self.leave(&room, tell_self).await;
        }
    }

    // ----- messages: the fast path -----

    /// Reflects a groupchat message to every occupant of its room.
    async fn message(&mut self, s: Stanza) -> Result<(), End> {
        let kind = s.attr("type");
        if kind == Some("error") {
            return Ok(());
        }
        let to = s.attr("to").and_then(|t| Jid::new(t).ok());
        let room = to.as_ref().filter(|j| {
            j.domain().as_str() == MUC_DOMAIN && j.node().is_some() && j.resource().is_none()
        });
        let (Some(room), Some("groupchat")) = (room, kind) else {
            return self
                .message_error(&s, "service-unavailable", "cancel")
                .await;
        };
        let room = room.to_bare().to_string();
        let occupants = {
            let rooms = self.server.rooms.lock();
            rooms.get(&room).map(|r| r.occupants.clone())
        };
        let nick = occupants
            .as_ref()
            .and_then(|os| os.iter().find(|o| o.conn == self.id))
            .map(|o| o.nick.clone());
        let (Some(occupants), Some(nick)) = (occupants, nick) else {
            return self.message_error(&s, "not-acceptable", "modify").await;
        };
        // The start tag for each receiver: `<message from='room/nick'
        // to='` RECEIVER `'` and every other attribute as it came, and the
        // tag's end; the rest of the stanza is shared.
        let mut prefix = String::with_capacity(64 + room.len() + nick.len());
        prefix.push_str("<message from='");
        escape_into(&mut prefix, &format!("{room}/{nick}"));
        prefix.push_str("' to='");
        let bytes = &s.bytes;
        let mut suffix: Vec<u8> = Vec::with_capacity(s.head_end);
        suffix.push(b'\'');
        let mut last = s.name_end;
        for a in &s.attrs {
            if a.prefix.is_none() && (a.name == "from" || a.name == "to") {
                last = a.end;
                continue;
            }
            let span = bytes
                .get(a.start..a.end)
                .ok_or(End::Error("internal-server-error"))?;
            suffix.extend_from_slice(span);
            last = a.end;
        }
        // The whitespace before `>` or `/>`, and that.
        let close = bytes
            .get(last..s.head_end)
            .ok_or(End::Error("internal-server-error"))?;
        suffix.extend_from_slice(close);
        let body = bytes.slice(s.head_end.min(bytes.len())..);
        for o in occupants.iter() {
            let mut head = Vec::with_capacity(prefix.len() + o.jid_attr.len() + suffix.len());
            head.extend_from_slice(prefix.as_bytes());
            head.extend_from_slice(o.jid_attr.as_bytes());
            head.extend_from_slice(&suffix);
            let out = Out::Msg {
                head,
                body: body.clone(),
            };
            // Waits while that occupant's queue is full (back-pressure);
            // a closed queue is an occupant on its way out.
            let _ = o.tx.send(out).await;
        }
        Ok(())
    }

    async fn message_error(&self, s: &Stanza, condition: &str, kind: &str) -> Result<(), End> {
        let from = s
            .attr("to")
            .map(|t| format!(" from='{}'", esc(t)))
            .unwrap_or_default();
        let id = s
            .attr("id")
            .map(|i| format!(" id='{}'", esc(i)))
            .unwrap_or_default();
        self.send_str(format!(
            "<message type='error'{id}{from} to='{}'><error type='{kind}'><{condition} \
             xmlns='{NS_STANZAS}'/></error></message>",
            self.jid_attr
        ))
        .await
    }
}

// ===================================================================
// The harness
// ===================================================================

struct Device {
    client: Client,
    participant: usize,
}

struct ChatState {
    room: BareJid,
    /// Device index of each member number.
    members: Vec<usize>,
    /// The entered room, per member number.
    groups: Vec<GroupChat>,
}

/// A chat of the floor harness (an index into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmppFloorChat(usize);

/// The conformance suite's harness on [`XmppFloor`] with the library's
/// client. See the [module docs](self).
pub struct XmppFloorHarness {
    // Field order matters on drop: the clients go first, then the server.
    chats: Vec<ChatState>,
    devices: Vec<Device>,
    /// Account and number of devices of each participant.
    participants: Vec<(BareJid, usize)>,
    server: Option<XmppFloor>,
}

impl Default for XmppFloorHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl XmppFloorHarness {
    /// A harness; its server starts on first use.
    pub fn new() -> Self {
        XmppFloorHarness {
            chats: Vec::new(),
            devices: Vec::new(),
            participants: Vec::new(),
            server: None,
        }
    }

    async fn addr(&mut self) -> Result<SocketAddr, HarnessError> {
        if let Some(s) = &self.server {
            return Ok(s.addr());
        }
        let s = XmppFloor::start().await.map_err(HarnessError::new)?;
        let addr = s.addr();
        self.server = Some(s);
        Ok(addr)
    }

    /// The echoes of their own payloads that the clients dropped unread
    /// (`Client::echoes_skipped`), all together.
    pub fn echoes_skipped(&self) -> u64 {
        self.devices.iter().map(|d| d.client.echoes_skipped()).sum()
    }

    /// Closes every client (each bounded by a few seconds), then stops
    /// the server.
    pub async fn shutdown(mut self) {
        self.chats.clear();
        for d in self.devices.drain(..) {
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, d.client.shutdown()).await;
        }
        self.server = None;
    }

    async fn new_device(&mut self, p: usize) -> Result<usize, HarnessError> {
        let addr = self.addr().await?;
        let part = self
            .participants
            .get_mut(p)
            .ok_or_else(|| HarnessError(format!("no participant {p}")))?;
        part.1 += 1;
        let config = Config::new(part.0.clone(), "any password")
            .danger_plaintext_loopback_only(addr)
            .with_connect_timeout(crate::CONNECT_TIMEOUT)
            .with_resource(format!("device{}", part.1));
        let client = Client::connect(config)
            .await
            .map_err(|e| HarnessError(format!("connecting member {p}: {e}")))?;
        self.devices.push(Device {
            client,
            participant: p,
        });
        Ok(self.devices.len() - 1)
    }

    async fn enter(&self, room: &BareJid, device: usize) -> Result<GroupChat, HarnessError> {
        let d = self
            .devices
            .get(device)
            .ok_or_else(|| HarnessError(format!("no device {device}")))?;
        d.client
            .group(room.clone())
            .await
            .map_err(|e| HarnessError(format!("entering {room}: {e}")))
    }

    async fn new_room(&mut self, members: Vec<usize>) -> Result<XmppFloorChat, HarnessError> {
        let room = BareJid::new(&format!("chat{}@{MUC_DOMAIN}", self.chats.len()))
            .map_err(HarnessError::new)?;
        let mut groups = Vec::with_capacity(members.len());
        for &d in &members {
            groups.push(self.enter(&room, d).await?);
        }
        self.chats.push(ChatState {
            room,
            members,
            groups,
        });
        Ok(XmppFloorChat(self.chats.len() - 1))
    }

    fn chat(&self, chat: &XmppFloorChat) -> Result<&ChatState, HarnessError> {
        self.chats
            .get(chat.0)
            .ok_or_else(|| HarnessError(format!("unknown chat {}", chat.0)))
    }
}

impl Harness for XmppFloorHarness {
    type Chat = XmppFloorChat;
    type Channel = XmppFloorChannel;

    fn name(&self) -> String {
        "xmpp-floor".into()
    }

    fn capabilities(&self) -> Capabilities {
        // Devices would work, but the suite's flags come as a set: without
        // a restart there is only NONE.
        Capabilities::NONE
    }

    async fn new_chat(&mut self, members: usize) -> Result<XmppFloorChat, HarnessError> {
        let mut devices = Vec::with_capacity(members);
        for _ in 0..members {
            let jid = BareJid::new(&format!("member{}@{DOMAIN}", self.participants.len()))
                .map_err(HarnessError::new)?;
            self.participants.push((jid, 0));
            devices.push(self.new_device(self.participants.len() - 1).await?);
        }
        self.new_room(devices).await
    }

    async fn other_chat(&mut self, chat: &XmppFloorChat) -> Result<XmppFloorChat, HarnessError> {
        let members = self.chat(chat)?.members.clone();
        self.new_room(members).await
    }

    async fn join(
        &mut self,
        chat: &XmppFloorChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<XmppFloorChannel, JoinFailure>, HarnessError> {
        let group = self
            .chat(chat)?
            .groups
            .get(member)
            .ok_or_else(|| HarnessError(format!("no member {member} in chat {}", chat.0)))?;
        Ok(match group.join_realtime_channel(instance) {
            Ok(inner) => Ok(XmppFloorChannel::from(inner)),
            Err(JoinError::AlreadyJoined) => Err(JoinFailure::AlreadyJoined),
            Err(e) => Err(JoinFailure::Other(e.to_string())),
        })
    }

    async fn add_device(
        &mut self,
        chat: &XmppFloorChat,
        member: Member,
    ) -> Result<Member, HarnessError> {
        let state = self.chat(chat)?;
        let device = *state
            .members
            .get(member)
            .ok_or_else(|| HarnessError(format!("no member {member} in chat {}", chat.0)))?;
        let room = state.room.clone();
        let p = self.devices[device].participant;
        let d = self.new_device(p).await?;
        let group = self.enter(&room, d).await?;
        let state = &mut self.chats[chat.0];
        state.members.push(d);
        state.groups.push(group);
        Ok(state.members.len() - 1)
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        Err(HarnessError::new(
            "not supported: the floor server runs in this process",
        ))
    }
}

/// A channel of the floor harness: the XMPP backend's own channel type (the
/// same library channel, the same mapping of its errors and deliveries).
pub type XmppFloorChannel = spec_backends::xmpp::XmppChannel;
