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

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
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
pub(crate) struct StartTls(pub DnsConfig, pub Causes);

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
        let guarded = BufStream::new(Guard::new(tls, self.1.clone()));
        let pending = initiate_stream(guarded, ns, header(jid), timeouts).await?;
        Ok((pending, binding))
    }
}

/// No encryption; only ever built for loopback addresses.
#[derive(Debug, Clone)]
pub(crate) struct Plaintext(pub DnsConfig, pub Causes);

impl ServerConnector for Plaintext {
    type Stream = BufStream<Guard<TcpStream>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), Error> {
        let stream = BufStream::new(Guard::new(tcp(&self.0).await?, self.1.clone()));
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
}

impl<S> Guard<S> {
    /// A guard around `inner` that records the causes it finds nowhere
    /// but in its own read errors.
    pub fn standalone(inner: S) -> Self {
        Self::new(inner, Causes::default())
    }

    fn new(inner: S, causes: Causes) -> Self {
        Guard {
            inner,
            scanner: Scanner::default(),
            causes,
            tripped: None,
        }
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
        if let Some(cause) = &self.tripped {
            return Poll::Ready(Err(violation(cause)));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let mut passed = buf.filled().len();
        let causes = &this.causes;
        let scanned = this
            .scanner
            .scan(&buf.filled()[before..], |cause| record(causes, cause));
        if let Err((at, cause)) = scanned {
            record(&this.causes, cause.clone());
            this.tripped = Some(cause);
            passed = before + at;
        }
        // What came before the violation reaches the parser (it may end a
        // stanza); the violation is the next read's error. Nothing of the
        // offending bytes is ever passed on.
        buf.set_filled(passed);
        match &this.tripped {
            Some(cause) if passed == before => Poll::Ready(Err(violation(cause))),
            _ => Poll::Ready(Ok(())),
        }
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
}

const NAME_KEPT: usize = 32;
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
        bytes: &[u8],
        mut stream_error: impl FnMut(DisconnectCause),
    ) -> Result<(), (usize, DisconnectCause)> {
        let mut at = 0;
        while at < bytes.len() {
            at += self.skip(&bytes[at..]).map_err(|n| {
                let cause = DisconnectCause::StanzaTooLarge {
                    limit: MAX_STANZA_BYTES,
                };
                (at + n, cause)
            })?;
            let Some(&b) = bytes.get(at) else {
                break;
            };
            match self.feed(b) {
                Scan::Fine => {}
                Scan::StreamError(cause) => stream_error(cause),
                Scan::Violation(cause) => return Err((at, cause)),
            }
            at += 1;
        }
        Ok(())
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
            let r = s.scan(piece, |c| errors.push((None, Scan::StreamError(c))));
            seen.extend(errors);
            if let Err((at, cause)) = r {
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
}
