//! TCP connectors that switch Nagle's algorithm off and bound what the
//! server may make us hold.
//!
//! Realtime payloads are small stanzas written one at a time. With Nagle's
//! algorithm on (the socket default, and what tokio-xmpp's own connectors
//! leave in place) a small write that follows another unacknowledged one
//! waits for the server's delayed ACK: about 40 ms per hop on Linux, which
//! measured as a ~50 ms median round trip through a loopback server instead
//! of a few milliseconds. These connectors are tokio-xmpp's STARTTLS and
//! plaintext connectors with `TCP_NODELAY` set on the socket.
//!
//! # Bounds on what the server sends
//!
//! tokio-xmpp builds each incoming stanza as a whole tree in memory, and
//! its XML parser (rxml) bounds only single tokens (8 KiB per name,
//! attribute value or text chunk): a stanza of any size, nested to any
//! depth, is held until it ends. A hostile or broken server could make the
//! client hold a 10 MB stanza, or nest 100,000 elements (whose tree is
//! also dropped recursively). rxml refuses DTDs and entity declarations
//! by itself (XMPP's restricted XML), so entity expansion cannot happen,
//! but the stream then only breaks as a parse error with no cause given.
//!
//! None of these limits can be set through tokio-xmpp, so [`Guard`] sits
//! between the (decrypted) socket and the parser: a byte-level scanner
//! that follows just enough of XML's lexical structure (tags, quoted
//! attribute values, CDATA sections) to know the element depth and the
//! size of the current top-level element. Past [`MAX_STANZA_BYTES`] or
//! [`MAX_DEPTH`], or on a DTD, comment or processing instruction inside
//! the stream, the read fails with an I/O error naming the cause: the
//! connection is dropped (and re-established, like any lost connection)
//! and the cause is recorded for the client's task, which reports it as
//! [`ClientEvent::ConnectionDropped`](super::ClientEvent::ConnectionDropped).
//! The scanner also recognises the server's stream error (RFC 6120 §4.9,
//! `policy-violation` and others), which tokio-xmpp drops unreported, and
//! records its condition the same way.
//!
//! # Our own echoes
//!
//! A room reflects every groupchat message to its sender, and the engine
//! drops the reflection of our own payload as soon as it sees it. Parsing
//! it first cost as much as receiving a peer's payload: tokio-xmpp builds
//! the whole typed stanza (rxml's validation of every byte of the base64
//! text, xso's builders), about a fifth of the client's CPU per payload on
//! the benchmark's floor at 32 B and 0.3 ms at 128000 B. So the engine
//! gives the ids of the client's group frames a prefix of the client's
//! own, random per client ([`EchoSkip`]), and the guard, which sees each
//! top-level start tag anyway, empties a `<message type='groupchat'>`
//! whose `id` has that prefix: the start tag passes as it came, the
//! content is dropped (still scanned, so every limit above holds) and a
//! bare `</message>` ends it. The parser then reads an empty message from
//! our occupant JID, which the engine ignores, and the stream counts it as
//! the stanza it was (XEP-0198's `h` is unchanged).
//!
//! Only a message the room reflected with the id we gave it is emptied:
//! a bounce of ours (`type='error'`, which keeps our id) is read in full,
//! and a server that rewrites ids gets every echo parsed, as before. An
//! occupant who copies our prefix into its own message ids can only make
//! us drop that occupant's own messages.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use sasl::common::ChannelBinding;
use tokio::io::{AsyncRead, AsyncWrite, BufStream, ReadBuf};
use tokio::net::TcpStream;
use tokio_xmpp::connect::tls_common::TlsStream;
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::error::ProtocolError;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::{initiate_stream, PendingFeaturesRecv, StreamHeader, Timeouts};
use tokio_xmpp::Error;

/// The largest top-level element (stanza, or the stream header) the client
/// accepts from the server, in bytes as sent. The largest legitimate one
/// is an archived status update or a payload of
/// [`MAX_PAYLOAD`](crate::MAX_PAYLOAD) bytes (about 171 KB once base64
/// encoded) inside an archive result; 1 MiB leaves room for any server's
/// wrapping while keeping a hostile server's stanza small.
pub const MAX_STANZA_BYTES: usize = 1024 * 1024;

/// The deepest element nesting the client accepts (the stream root is 1,
/// a stanza 2). Our deepest stanzas (a forwarded archive result) nest
/// about 8 deep.
pub const MAX_DEPTH: usize = 64;

/// The longest stream error kept to read its condition from.
const MAX_STREAM_ERROR_BYTES: usize = 4096;

/// Why the client dropped a connection, or how the server closed it, when
/// more is known than "the connection was lost".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectCause {
    /// The server closed the stream with a stream error (RFC 6120 §4.9).
    StreamError {
        /// The defined condition's name (`policy-violation`,
        /// `conflict`, `system-shutdown`, …).
        condition: String,
        /// The server's explanation, if it gave one.
        text: Option<String>,
    },
    /// The server sent a stanza larger than the client accepts.
    StanzaTooLarge {
        /// The limit, in bytes ([`MAX_STANZA_BYTES`]).
        limit: usize,
    },
    /// The server nested elements deeper than the client accepts.
    NestedTooDeep {
        /// The limit ([`MAX_DEPTH`]).
        limit: usize,
    },
    /// The server sent XML that XMPP forbids: a document type declaration
    /// (the vehicle of entity-expansion attacks such as "billion
    /// laughs"), a comment or a processing instruction.
    RestrictedXml,
}

impl std::fmt::Display for DisconnectCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StreamError { condition, text } => {
                write!(f, "the server closed the stream: {condition}")?;
                if let Some(t) = text {
                    write!(f, " ({t})")?;
                }
                Ok(())
            }
            Self::StanzaTooLarge { limit } => {
                write!(f, "the server sent a stanza larger than {limit} bytes")
            }
            Self::NestedTooDeep { limit } => {
                write!(f, "the server nested elements deeper than {limit}")
            }
            Self::RestrictedXml => write!(
                f,
                "the server sent a DTD, comment or processing instruction, which XMPP forbids"
            ),
        }
    }
}

/// The last cause recorded by a connection's [`Guard`], for the client's
/// task to report.
pub(crate) type Causes = Arc<Mutex<Option<DisconnectCause>>>;

fn record(causes: &Causes, cause: DisconnectCause) {
    *causes.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause);
}

/// Takes the cause recorded last, if any.
pub(crate) fn take_cause(causes: &Causes) -> Option<DisconnectCause> {
    causes.lock().unwrap_or_else(|p| p.into_inner()).take()
}

async fn tcp(dns: &DnsConfig) -> Result<TcpStream, Error> {
    let stream = dns.resolve().await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn header(jid: &Jid) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(jid.domain().as_str())),
        from: None,
        id: None,
    }
}

/// STARTTLS (required: a server that does not offer it is refused). The
/// [`Guard`] reads the decrypted stream; the two elements before TLS
/// (features, `<proceed/>`) are read unguarded, as tokio-xmpp's STARTTLS
/// negotiation needs the bare socket.
#[derive(Debug, Clone)]
pub(crate) struct StartTls(pub DnsConfig, pub Causes, pub EchoSkip);

impl ServerConnector for StartTls {
    type Stream = BufStream<Guard<TlsStream<TcpStream>>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), Error> {
        let plain = BufStream::new(tcp(&self.0).await?);
        let (features, stream) = initiate_stream(plain, ns, header(jid), timeouts)
            .await?
            .recv_features()
            .await?;
        if !features.can_starttls() {
            return Err(Error::Protocol(ProtocolError::NoTls));
        }
        let (tls, binding) =
            tokio_xmpp::connect::starttls::starttls(stream, jid.domain().as_str()).await?;
        let guarded = BufStream::new(Guard::new(tls, self.1.clone(), Some(self.2.clone())));
        let pending = initiate_stream(guarded, ns, header(jid), timeouts).await?;
        Ok((pending, binding))
    }
}

/// No encryption; only ever built for loopback addresses.
#[derive(Debug, Clone)]
pub(crate) struct Plaintext(pub DnsConfig, pub Causes, pub EchoSkip);

impl ServerConnector for Plaintext {
    type Stream = BufStream<Guard<TcpStream>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), Error> {
        let stream = BufStream::new(Guard::new(
            tcp(&self.0).await?,
            self.1.clone(),
            Some(self.2.clone()),
        ));
        let pending = initiate_stream(stream, ns, header(jid), timeouts).await?;
        Ok((pending, ChannelBinding::None))
    }
}

/// A stream whose incoming bytes are checked by a scanner before the
/// XML parser sees them (see the module docs); writes pass through.
///
/// Public only so that the benchmark can put the real receive path
/// together without a network (`benchmarks/src/wire_cost.rs`); the client
/// builds its own.
#[doc(hidden)]
#[derive(Debug)]
pub struct Guard<S> {
    inner: S,
    scanner: Scanner,
    causes: Causes,
    /// Set once a limit was crossed: every later read fails the same way.
    tripped: Option<DisconnectCause>,
    /// Bytes for the parser that did not fit where the last read put its
    /// own (an emptied echo's `</message>` ending right at the start of a
    /// read); handed out before anything is read again.
    spill: Vec<u8>,
}

impl<S> Guard<S> {
    /// A guard around `inner` that records the causes it finds nowhere
    /// but in its own read errors and empties no echo.
    pub fn standalone(inner: S) -> Self {
        Self::new(inner, Causes::default(), None)
    }

    /// Like [`standalone`](Self::standalone), but emptying the echoes of
    /// `echo`'s frames (see the module docs).
    pub fn with_echo_skip(inner: S, echo: EchoSkip) -> Self {
        Self::new(inner, Causes::default(), Some(echo))
    }

    fn new(inner: S, causes: Causes, echo: Option<EchoSkip>) -> Self {
        Guard {
            inner,
            scanner: Scanner {
                echo_skip: echo,
                ..Scanner::default()
            },
            causes,
            tripped: None,
            spill: Vec::new(),
        }
    }
}

/// The id prefix of one client's group frames, and how many of their
/// reflections its connections emptied unread (see the module docs).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct EchoSkip {
    prefix: Arc<[u8]>,
    count: Arc<AtomicU64>,
}

impl EchoSkip {
    /// A new random prefix: `rt-`, 16 hex digits, `-`. Ids are opaque to
    /// servers and peers; only this client's guards read the prefix.
    pub fn random() -> Self {
        let token = uuid::Uuid::new_v4().simple().to_string();
        Self::with_prefix(&format!("rt-{}-", &token[..16]))
    }

    /// A given prefix (for tests and the benchmark).
    pub fn with_prefix(prefix: &str) -> Self {
        EchoSkip {
            prefix: prefix.as_bytes().into(),
            count: Arc::default(),
        }
    }

    /// The prefix, for [`EngineConfig::frame_id_prefix`](crate::EngineConfig::frame_id_prefix).
    pub fn prefix(&self) -> String {
        String::from_utf8_lossy(&self.prefix).into_owned()
    }

    /// How many echoes were emptied so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

fn violation(cause: &DisconnectCause) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, cause.to_string())
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Scanned already, and before whatever comes next.
        if hand_out(&mut this.spill, buf) {
            return Poll::Ready(Ok(()));
        }
        if let Some(cause) = &this.tripped {
            return Poll::Ready(Err(violation(cause)));
        }
        let before = buf.filled().len();
        loop {
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if buf.filled().len() == before {
                // The end of the stream.
                return Poll::Ready(Ok(()));
            }
            let causes = &this.causes;
            let mut kept = Kept {
                len: 0,
                spill: &mut this.spill,
            };
            let scanned = this
                .scanner
                .scan(&mut buf.filled_mut()[before..], &mut kept, |cause| {
                    record(causes, cause)
                });
            let passed = before + kept.len;
            if let Err(cause) = scanned {
                record(&this.causes, cause.clone());
                this.tripped = Some(cause);
            }
            // What came before the violation reaches the parser (it may
            // end a stanza); the violation is the next read's error.
            // Nothing of the offending bytes is ever passed on.
            buf.set_filled(passed);
            if passed == before {
                hand_out(&mut this.spill, buf);
            }
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            if let Some(cause) = &this.tripped {
                return Poll::Ready(Err(violation(cause)));
            }
            // Everything read was an echo's content: an empty read would
            // say the stream ended, so read on (the socket registers the
            // wake-up if nothing more is there yet).
        }
    }
}

/// Moves what fits of `spill` into `buf`; whether there was any.
fn hand_out(spill: &mut Vec<u8>, buf: &mut ReadBuf<'_>) -> bool {
    if spill.is_empty() {
        return false;
    }
    let n = spill.len().min(buf.remaining());
    buf.put_slice(&spill[..n]);
    spill.drain(..n);
    true
}

/// Where [`Scanner::scan`] puts the bytes it keeps of a chunk: moved to
/// the chunk's front (`len` of them), and, once a byte it adds does not
/// fit there, to `spill`, in order, from then on.
struct Kept<'a> {
    len: usize,
    spill: &'a mut Vec<u8>,
}

impl Kept<'_> {
    /// Keeps `buf[from..to]`, bytes of the chunk.
    fn source(&mut self, buf: &mut [u8], from: usize, to: usize) {
        if from >= to {
            return;
        }
        if self.spill.is_empty() {
            if self.len != from {
                buf.copy_within(from..to, self.len);
            }
            self.len += to - from;
        } else {
            self.spill.extend_from_slice(&buf[from..to]);
        }
    }

    /// Adds `bytes` of its own; the chunk up to `room` was scanned, so
    /// that much of it may be overwritten.
    fn add(&mut self, buf: &mut [u8], bytes: &[u8], room: usize) {
        let fit = if self.spill.is_empty() {
            bytes.len().min(room.saturating_sub(self.len))
        } else {
            0
        };
        buf[self.len..self.len + fit].copy_from_slice(&bytes[..fit]);
        self.len += fit;
        self.spill.extend_from_slice(&bytes[fit..]);
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What one byte told the scanner.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Fine,
    /// A stream error from the server ended: worth reporting, the parser
    /// still reads it (and tokio-xmpp ends the connection).
    StreamError(DisconnectCause),
    /// A limit was crossed: the connection must end.
    Violation(DisconnectCause),
}

/// Where the scanner is in XML's lexical structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Lex {
    /// Character data (or whitespace between elements).
    #[default]
    Text,
    /// Just after `<`.
    Open,
    /// In a start tag (`start_depth` is the depth it opens at); `slash`:
    /// the last byte outside quotes was `/` (a self-closing tag).
    StartTag { slash: bool },
    /// In a quoted attribute value of a start tag.
    Quoted(u8),
    /// In an end tag.
    EndTag,
    /// In `<?…?>` (`question`: the last byte was `?`).
    Declaration { question: bool },
    /// After `<!`: how many bytes of `[CDATA[` matched so far.
    Bang(u8),
    /// In a CDATA section: how many bytes of `]]>` matched so far.
    Cdata(u8),
}

/// The byte-level scanner of [`Guard`] (see the module docs).
#[derive(Debug, Default)]
struct Scanner {
    lex: Lex,
    /// Open elements (the stream root is 1).
    depth: usize,
    /// Bytes of the current top-level element (0 between them).
    unit: usize,
    /// The first bytes of the name of the start tag being read.
    name: Vec<u8>,
    /// The stream error being read (from its `<`), while it is.
    stream_error: Option<Vec<u8>>,
    /// Our frames' id prefix and the count of emptied echoes, if echoes
    /// are to be emptied.
    echo_skip: Option<EchoSkip>,
    /// The bytes of the top-level start tag being read (from its name),
    /// while it may be an echo's: up to [`HEAD_KEPT`] of them.
    head: Option<Vec<u8>>,
    /// In an echo's content, which is dropped: `Began` just after its
    /// start tag ended, `Ended` just after its end tag did.
    echo: Echo,
}

/// Where the scanner is with respect to an echo being emptied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Echo {
    #[default]
    None,
    Began,
    Inside,
    Ended,
}

const NAME_KEPT: usize = 32;
/// The longest start tag of a stanza that is still looked at as a
/// possible echo; ours are under 300 bytes.
const HEAD_KEPT: usize = 1024;
/// What ends an emptied echo.
const ECHO_END: &[u8] = b"</message>";
const CDATA: &[u8] = b"[CDATA[";

impl Scanner {
    /// Scans `bytes`, the next ones of the stream: the stream errors that
    /// end in them go to `stream_error`; `Err` holds the offset of the
    /// first byte that crosses a limit and why (nothing after it was
    /// scanned).
    ///
    /// The same as [`feed`](Self::feed) byte by byte, but runs of bytes
    /// that cannot change the lexical state (character data up to the next
    /// `<`, a quoted attribute value up to its closing quote) are found
    /// with `memchr` and counted at once: a payload's base64 text, nearly
    /// all of a large stanza, is then a few instructions per 16 bytes
    /// instead of a state-machine step per byte.
    fn scan(
        &mut self,
        bytes: &mut [u8],
        kept: &mut Kept<'_>,
        mut stream_error: impl FnMut(DisconnectCause),
    ) -> Result<(), DisconnectCause> {
        let mut at = 0;
        // Where the run of bytes to keep began, unless in an echo.
        let mut run = (self.echo != Echo::Inside).then_some(0);
        let result = loop {
            if at >= bytes.len() {
                break Ok(());
            }
            let n = match self.skip(&bytes[at..]) {
                Ok(n) => n,
                Err(n) => {
                    at += n;
                    break Err(DisconnectCause::StanzaTooLarge {
                        limit: MAX_STANZA_BYTES,
                    });
                }
            };
            if n > 0 {
                self.keep_head(&bytes[at..at + n]);
            }
            at += n;
            let Some(&b) = bytes.get(at) else {
                break Ok(());
            };
            self.keep_head(&[b]);
            match self.feed(b) {
                Scan::Fine => {}
                Scan::StreamError(cause) => stream_error(cause),
                Scan::Violation(cause) => break Err(cause),
            }
            at += 1;
            match self.echo {
                Echo::Began => {
                    // The start tag (up to its `>`) is kept.
                    if let Some(from) = run.take() {
                        kept.source(bytes, from, at);
                    }
                    self.echo = Echo::Inside;
                }
                Echo::Ended => {
                    kept.add(bytes, ECHO_END, at);
                    run = Some(at);
                    self.echo = Echo::None;
                }
                Echo::None | Echo::Inside => {}
            }
        };
        // Up to the end, or to the byte that crossed a limit.
        if let Some(from) = run {
            kept.source(bytes, from, at.min(bytes.len()));
        }
        result
    }

    /// Adds `bytes`, the next ones of a top-level start tag, to the ones
    /// kept to tell whether it is an echo's.
    fn keep_head(&mut self, bytes: &[u8]) {
        if let Some(head) = &mut self.head {
            if head.len() + bytes.len() > HEAD_KEPT {
                self.head = None;
            } else {
                head.extend_from_slice(bytes);
            }
        }
    }

    /// How many bytes at the start of `rest` leave the lexical state as it
    /// is, accounted for as [`feed`](Self::feed) would one by one; `Err`
    /// with the offset of the byte that makes the element too large.
    ///
    /// Such runs are: character data up to the next `<`, a quoted value up
    /// to its quote, an end tag up to its `>`, and the attributes part of
    /// a start tag (its name read) up to the next quote or `>`, where only
    /// whether the last byte was `/` matters.
    #[inline]
    fn skip(&mut self, rest: &[u8]) -> Result<usize, usize> {
        // A stream error keeps its bytes: left to `feed`, it is rare.
        if self.stream_error.is_some() {
            return Ok(0);
        }
        let found = match self.lex {
            Lex::Text => memchr::memchr(b'<', rest),
            Lex::Quoted(q) => memchr::memchr(q, rest),
            Lex::EndTag => memchr::memchr(b'>', rest),
            Lex::StartTag { .. } if self.name.ends_with(b" ") => {
                memchr::memchr3(b'>', b'\'', b'"', rest)
            }
            _ => return Ok(0),
        };
        let run = found.unwrap_or(rest.len());
        if run == 0 {
            return Ok(0);
        }
        if let Lex::StartTag { .. } = self.lex {
            self.lex = Lex::StartTag {
                slash: rest[run - 1] == b'/',
            };
        }
        if self.lex == Lex::Text && self.depth <= 1 {
            // Whitespace between top-level elements belongs to none.
            self.unit = 0;
            return Ok(run);
        }
        let room = MAX_STANZA_BYTES.saturating_sub(self.unit);
        if run > room {
            return Err(room);
        }
        self.unit += run;
        Ok(run)
    }

    fn feed(&mut self, b: u8) -> Scan {
        if let Some(e) = &mut self.stream_error {
            if e.len() < MAX_STREAM_ERROR_BYTES {
                e.push(b);
            }
        }
        // Whitespace between stanzas (keepalives) is not part of any.
        if self.lex == Lex::Text && self.depth <= 1 && b != b'<' {
            self.unit = 0;
        } else {
            self.unit += 1;
            if self.unit > MAX_STANZA_BYTES {
                return Scan::Violation(DisconnectCause::StanzaTooLarge {
                    limit: MAX_STANZA_BYTES,
                });
            }
        }
        match self.lex {
            Lex::Text => {
                if b == b'<' {
                    self.lex = Lex::Open;
                }
            }
            Lex::Open => match b {
                b'/' => self.lex = Lex::EndTag,
                // The XML declaration, before the first stream header or
                // a restarted one (which opens inside the old root).
                b'?' if self.depth <= 1 => self.lex = Lex::Declaration { question: false },
                b'?' => return Scan::Violation(DisconnectCause::RestrictedXml),
                b'!' => self.lex = Lex::Bang(0),
                _ => {
                    self.name.clear();
                    self.name.push(b);
                    if self.depth == 1 {
                        // A top-level element starts: it is the stream
                        // error's first byte too.
                        self.stream_error = None;
                        if self.echo_skip.is_some() {
                            // `scan` adds the rest.
                            let mut head = Vec::with_capacity(256);
                            head.push(b);
                            self.head = Some(head);
                        }
                    }
                    self.lex = Lex::StartTag { slash: false };
                }
            },
            Lex::StartTag { slash } => match b {
                b'\'' | b'"' => {
                    self.name_done();
                    self.lex = Lex::Quoted(b);
                }
                b'>' => return self.start_tag_ends(slash),
                b'/' => {
                    self.name_done();
                    self.lex = Lex::StartTag { slash: true };
                }
                _ => {
                    if b.is_ascii_whitespace() {
                        self.name_done();
                    } else if self.name.len() < NAME_KEPT && !self.name.ends_with(b" ") {
                        self.name.push(b);
                    }
                    self.lex = Lex::StartTag { slash: false };
                }
            },
            Lex::Quoted(q) => {
                if b == q {
                    self.lex = Lex::StartTag { slash: false };
                }
            }
            Lex::EndTag => {
                if b == b'>' {
                    self.lex = Lex::Text;
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth <= 1 && self.echo == Echo::Inside {
                        self.echo = Echo::Ended;
                    }
                    if self.depth <= 1 {
                        self.unit = 0;
                        if self.depth == 1 {
                            if let Some(e) = self.stream_error.take() {
                                return Scan::StreamError(read_stream_error(&e));
                            }
                        }
                    }
                }
            }
            Lex::Declaration { question } => {
                self.lex = match (question, b) {
                    (true, b'>') => Lex::Text,
                    (_, b'?') => Lex::Declaration { question: true },
                    _ => Lex::Declaration { question: false },
                };
            }
            Lex::Bang(matched) => {
                if CDATA.get(usize::from(matched)) == Some(&b) {
                    self.lex = if usize::from(matched) + 1 == CDATA.len() {
                        Lex::Cdata(0)
                    } else {
                        Lex::Bang(matched + 1)
                    };
                } else {
                    // `<!DOCTYPE`, `<!ENTITY`, `<!--`: all forbidden.
                    return Scan::Violation(DisconnectCause::RestrictedXml);
                }
            }
            Lex::Cdata(matched) => {
                self.lex = match (matched, b) {
                    (2, b'>') => Lex::Text,
                    (_, b']') => Lex::Cdata((matched + 1).min(2)),
                    _ => Lex::Cdata(0),
                };
            }
        }
        Scan::Fine
    }

    /// The tag name ended (whitespace, `/` or a quote follows): later
    /// bytes are attributes. A space marks it done.
    fn name_done(&mut self) {
        if !self.name.ends_with(b" ") {
            self.name.push(b' ');
        }
    }

    fn start_tag_ends(&mut self, self_closing: bool) -> Scan {
        self.lex = Lex::Text;
        let head = self.head.take();
        if let (Some(head), Some(skip), false, 1) =
            (head, &self.echo_skip, self_closing, self.depth)
        {
            if is_own_echo(&head, &skip.prefix) {
                self.echo = Echo::Began;
                skip.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let name = self.name.strip_suffix(b" ").unwrap_or(&self.name);
        let local = name.rsplit(|&c| c == b':').next().unwrap_or(name);
        let top_level = self.depth <= 1;
        if top_level && local == b"stream" {
            // A stream header, the first or a restart after SASL: the
            // root of a new stream, not a stanza.
            self.depth = 1;
            self.unit = 0;
            return Scan::Fine;
        }
        if self.depth == 1 && local == b"error" && self_closing {
            return Scan::StreamError(read_stream_error(b""));
        }
        if self.depth == 1 && local == b"error" {
            // The only `error` child of the stream root is its stream
            // error; keep it (from its `<`) to read its condition.
            let mut kept = b"<".to_vec();
            kept.extend_from_slice(name);
            kept.extend_from_slice(b">");
            self.stream_error = Some(kept);
        }
        if self_closing {
            if top_level {
                self.unit = 0;
            }
            return Scan::Fine;
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Scan::Violation(DisconnectCause::NestedTooDeep { limit: MAX_DEPTH });
        }
        Scan::Fine
    }
}

/// Whether `head`, a top-level start tag from its name to its `>`, is a
/// groupchat message whose id has our `prefix`. Anything this does not
/// read plainly (a prefixed name, an unquoted value) is not an echo: it is
/// then parsed in full, which is never wrong.
fn is_own_echo(head: &[u8], prefix: &[u8]) -> bool {
    let Some(mut rest) = head.strip_prefix(b"message") else {
        return false;
    };
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return false;
    }
    let (mut groupchat, mut ours) = (false, false);
    loop {
        rest = rest.trim_ascii_start();
        let Some(eq) = rest.iter().position(|&c| c == b'=') else {
            break;
        };
        let name = rest[..eq].trim_ascii();
        let value = rest[eq + 1..].trim_ascii_start();
        let Some(&quote) = value.first().filter(|&&q| q == b'\'' || q == b'"') else {
            return false;
        };
        let Some(len) = value[1..].iter().position(|&c| c == quote) else {
            return false;
        };
        let v = &value[1..1 + len];
        match name {
            b"type" => groupchat = v == b"groupchat",
            b"id" => ours = v.len() > prefix.len() && v.starts_with(prefix),
            _ => {}
        }
        rest = &value[len + 2..];
    }
    groupchat && ours
}

/// The condition and text of a stream error (`<stream:error>` with its
/// content), read with the same lexical shortcuts: the first child that is
/// not `<text>` names the condition.
fn read_stream_error(xml: &[u8]) -> DisconnectCause {
    let text = String::from_utf8_lossy(xml);
    let mut condition = None;
    let mut explanation = None;
    // Skip the `<stream:error …>` tag itself.
    let mut rest = text.split_once('>').map_or("", |(_, r)| r);
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        if rest.starts_with('/') {
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .unwrap_or(rest.len());
        let name = &rest[..end];
        let local = name.rsplit(':').next().unwrap_or(name);
        if local == "text" {
            let body = rest.split_once('>').map_or("", |(_, r)| r);
            let body = body.split('<').next().unwrap_or("");
            if !body.is_empty() {
                explanation = Some(body.to_owned());
            }
        } else if condition.is_none() && !local.is_empty() {
            condition = Some(local.to_owned());
        }
    }
    DisconnectCause::StreamError {
        condition: condition.unwrap_or_else(|| "undefined-condition".to_owned()),
        text: explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the scanner reports for `xml` read in one piece, checked to be
    /// the same as read in pieces of any size and as `feed` byte by byte
    /// (the fast path of `scan` changes nothing but the speed).
    fn scan(xml: &[u8]) -> Vec<Scan> {
        let whole = scan_in(xml, xml.len().max(1));
        for chunk in [1, 2, 7, 4096] {
            assert_eq!(scan_in(xml, chunk), whole, "in pieces of {chunk}");
        }
        // As the guard does: nothing is read after a violation.
        let mut s = Scanner::default();
        let mut fed = Vec::new();
        for (at, &b) in xml.iter().enumerate() {
            match s.feed(b) {
                Scan::Fine => {}
                Scan::Violation(v) => {
                    fed.push((Some(at), Scan::Violation(v)));
                    break;
                }
                other => fed.push((None, other)),
            }
        }
        assert_eq!(whole, fed, "scan and feed differ");
        whole.into_iter().map(|(_, s)| s).collect()
    }

    /// The reports of `scan` over `xml` in pieces of `chunk` bytes, with
    /// the offset of a violation.
    fn scan_in(xml: &[u8], chunk: usize) -> Vec<(Option<usize>, Scan)> {
        let mut s = Scanner::default();
        let mut seen = Vec::new();
        for (i, piece) in xml.chunks(chunk).enumerate() {
            let mut errors = Vec::new();
            let mut piece = piece.to_vec();
            let mut spill = Vec::new();
            let mut kept = Kept {
                len: 0,
                spill: &mut spill,
            };
            let r = s.scan(&mut piece, &mut kept, |c| {
                errors.push((None, Scan::StreamError(c)))
            });
            // Without echoes everything before a violation is kept, in place.
            assert_eq!(kept.len, piece.len().min(kept.len));
            let at = kept.len;
            assert!(spill.is_empty());
            seen.extend(errors);
            if let Err(cause) = r {
                seen.push((Some(i * chunk + at), Scan::Violation(cause)));
                break;
            }
        }
        seen
    }

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

    #[test]
    fn an_ordinary_stream_passes_with_restarts_and_keepalives() {
        let xml = format!(
            "{HEADER}<stream:features><mechanisms><mechanism>PLAIN</mechanism></mechanisms>\
             </stream:features><success/>{HEADER}<stream:features/> \n \
             <message a='x>y' b=\"/>\"><body><![CDATA[<not-a-tag> ]] ]]]></body><x/></message>\
             <r xmlns='urn:xmpp:sm:3'/></stream:stream>"
        );
        assert_eq!(scan(xml.as_bytes()), []);
    }

    #[test]
    fn a_large_stanza_is_refused_and_whitespace_between_is_not_counted() {
        let big = format!(
            "{HEADER}<message><body>{}</body></message>",
            "A".repeat(MAX_STANZA_BYTES)
        );
        assert_eq!(
            scan(big.as_bytes()),
            [Scan::Violation(DisconnectCause::StanzaTooLarge {
                limit: MAX_STANZA_BYTES
            })]
        );
        let spaced = format!(
            "{HEADER}{}<message/>{}",
            " ".repeat(MAX_STANZA_BYTES + 1),
            " ".repeat(MAX_STANZA_BYTES + 1)
        );
        assert_eq!(scan(spaced.as_bytes()), []);
        // Many stanzas whose sum is past the limit: each counts alone.
        let many = format!(
            "{HEADER}{}",
            "<message><body>hi</body></message>".repeat(50_000)
        );
        assert_eq!(scan(many.as_bytes()), []);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let ok = format!(
            "{HEADER}{}{}",
            "<a>".repeat(MAX_DEPTH - 1),
            "</a>".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(scan(ok.as_bytes()), []);
        let deep = format!("{HEADER}{}", "<a>".repeat(100_000));
        assert_eq!(
            scan(deep.as_bytes()),
            [Scan::Violation(DisconnectCause::NestedTooDeep {
                limit: MAX_DEPTH
            })]
        );
    }

    #[test]
    fn dtds_comments_and_processing_instructions_are_refused() {
        for bad in [
            "<!DOCTYPE lolz [<!ENTITY lol 'lol'>]><lolz>&lol;</lolz>".to_owned(),
            format!("{HEADER}<!DOCTYPE x>"),
            format!("{HEADER}<message><!-- hi --></message>"),
            format!("{HEADER}<message><?pi x?></message>"),
        ] {
            assert_eq!(
                scan(bad.as_bytes()),
                [Scan::Violation(DisconnectCause::RestrictedXml)],
                "{bad}"
            );
        }
    }

    #[test]
    fn a_stream_error_is_read() {
        let xml = format!(
            "{HEADER}<message/><stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza too large</text></stream:error></stream:stream>"
        );
        assert_eq!(
            scan(xml.as_bytes()),
            [Scan::StreamError(DisconnectCause::StreamError {
                condition: "policy-violation".into(),
                text: Some("stanza too large".into())
            })]
        );
        // An `error` deeper down (a stanza error) is not a stream error.
        let stanza_error =
            format!("{HEADER}<iq type='error'><error type='cancel'><conflict/></error></iq>");
        assert_eq!(scan(stanza_error.as_bytes()), []);
    }

    /// The bytes the parser gets from `xml` read in pieces of `chunk`
    /// bytes by a scanner that empties the echoes of `rt-abc-` ids, and
    /// how many it emptied.
    fn filtered(xml: &[u8], chunk: usize) -> (Vec<u8>, u64) {
        let mut s = Scanner {
            echo_skip: Some(EchoSkip::with_prefix("rt-abc-")),
            ..Scanner::default()
        };
        let mut out = Vec::new();
        let mut spill = Vec::new();
        for piece in xml.chunks(chunk) {
            let mut piece = piece.to_vec();
            let mut kept = Kept {
                len: 0,
                spill: &mut spill,
            };
            let r = s.scan(&mut piece, &mut kept, |_| {});
            let len = kept.len;
            out.extend_from_slice(&piece[..len]);
            out.append(&mut spill);
            if r.is_err() {
                break;
            }
        }
        (out, s.echo_skip.as_ref().map_or(0, EchoSkip::count))
    }

    const ECHO: &str = "<message from='r@muc.x/me' to='me@x/phone' type='groupchat' \
        id='rt-abc-1'><thread>t</thread><no-store xmlns='urn:xmpp:hints'/>\
        <x xmlns='urn:xmpp:webxdc:0'><data>QUJD</data></x></message>";

    #[test]
    fn our_echoes_are_emptied_and_nothing_else() {
        let peer = "<message from='r@muc.x/peer' to='me@x/phone' type='groupchat' \
            id='rt-xyz-1'><x xmlns='urn:xmpp:webxdc:0'><data>QUJD</data></x></message>";
        // Double quotes, attributes in another order, an end tag with
        // whitespace, nested elements of the same name.
        let echo2 = "<message id=\"rt-abc-2\"\ttype = \"groupchat\" from=\"r@muc.x/me\">\
            <x><message>inner</message><![CDATA[</message>]]></x></message >";
        // Ours, but a bounce (it says why), a 1:1 message, a prefix alone,
        // a prefixed element name: all read in full.
        let kept = [
            "<message from='r@muc.x' type='error' id='rt-abc-3'><error type='modify'>\
             <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
            "<message type='chat' id='rt-abc-4'><body>hi</body></message>",
            "<message type='groupchat' id='rt-abc-'><body>hi</body></message>",
            "<client:message type='groupchat' id='rt-abc-5'><body/></client:message>",
            "<message type='groupchat' id='rt-abc-6'/>",
            "<iq type='groupchat' id='rt-abc-7'><x/></iq>",
        ];
        let xml = format!(
            "{HEADER}{ECHO} {peer}{echo2}{}</stream:stream>",
            kept.concat()
        );
        let expected = format!(
            "{HEADER}<message from='r@muc.x/me' to='me@x/phone' type='groupchat' \
             id='rt-abc-1'></message> {peer}<message id=\"rt-abc-2\"\ttype = \"groupchat\" \
             from=\"r@muc.x/me\"></message>{}</stream:stream>",
            kept.concat()
        );
        for chunk in [1, 2, 3, 7, 10, 64, 4096] {
            let (out, emptied) = filtered(xml.as_bytes(), chunk);
            assert_eq!(
                String::from_utf8_lossy(&out),
                expected,
                "in pieces of {chunk}"
            );
            assert_eq!(emptied, 2, "in pieces of {chunk}");
        }
    }

    #[test]
    fn an_emptied_echo_is_still_held_to_the_limits() {
        let big = format!(
            "{HEADER}<message type='groupchat' id='rt-abc-1'><x>{}</x></message>",
            "A".repeat(MAX_STANZA_BYTES)
        );
        let mut s = Scanner {
            echo_skip: Some(EchoSkip::with_prefix("rt-abc-")),
            ..Scanner::default()
        };
        let mut bytes = big.into_bytes();
        let mut spill = Vec::new();
        let mut kept = Kept {
            len: 0,
            spill: &mut spill,
        };
        assert_eq!(
            s.scan(&mut bytes, &mut kept, |_| {}),
            Err(DisconnectCause::StanzaTooLarge {
                limit: MAX_STANZA_BYTES
            })
        );
        let deep = format!(
            "{HEADER}<message type='groupchat' id='rt-abc-1'>{}",
            "<a>".repeat(100)
        );
        let (_, emptied) = filtered(deep.as_bytes(), 5);
        assert_eq!(emptied, 1);
        let mut s = Scanner {
            echo_skip: Some(EchoSkip::with_prefix("rt-abc-")),
            ..Scanner::default()
        };
        let mut bytes = deep.into_bytes();
        let mut kept = Kept {
            len: 0,
            spill: &mut spill,
        };
        assert_eq!(
            s.scan(&mut bytes, &mut kept, |_| {}),
            Err(DisconnectCause::NestedTooDeep { limit: MAX_DEPTH })
        );
    }

    /// The guard over a pipe whose reads the test cuts: a read that is all
    /// echo content is not taken for the end of the stream, and an
    /// `</message>` that does not fit where the read put its bytes comes
    /// with the next read.
    #[tokio::test]
    async fn the_guard_reads_on_past_an_echo_and_hands_out_what_it_added() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let xml = format!("{HEADER}{ECHO}<r xmlns='urn:xmpp:sm:3'/>");
        let (mut tx, rx) = tokio::io::duplex(16);
        let echo = EchoSkip::with_prefix("rt-abc-");
        let mut guard = Guard::with_echo_skip(rx, echo.clone());
        let writer = tokio::spawn(async move {
            for piece in xml.as_bytes().chunks(5) {
                tx.write_all(piece).await.expect("written");
            }
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = guard.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        writer.await.expect("writer");
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!(
                "{HEADER}<message from='r@muc.x/me' to='me@x/phone' type='groupchat' \
                 id='rt-abc-1'></message><r xmlns='urn:xmpp:sm:3'/>"
            )
        );
        assert_eq!(echo.count(), 1);
    }
}
