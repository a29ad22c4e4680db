//! Part 1: hostile stanzas.
//!
//! A seeded generator of stanzas as XML text (valid realtime frames for
//! group and 1:1 chats, status updates, shared apps, MUC presences, archive
//! results and iq answers, and above all mutations of them) feeds each one
//! through [`Engine::handle_xml`] of an engine that is in two rooms with
//! channels joined (so that valid frames are delivered), and through the
//! wire decoders directly. Every panic is counted (and the first few
//! printed with their seed and input, which [`input`] regenerates); every
//! delivery, and every decoder acceptance, is checked again by a validator
//! written from the rules of `docs/wire-format.md` that reads the input XML
//! itself and never calls the library's decoder ([`validate_delivery`]).
//!
//! Each input is made from the run's seed, its family and its index alone,
//! so one input can be made again without the ones before it.

use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use webxdc_realtime_xmpp::engine::{
    ChannelId, Chat, Engine, EngineConfig, EngineEvent, Handled, Output,
};
use webxdc_realtime_xmpp::jid::{BareJid, Jid};
use webxdc_realtime_xmpp::minidom::Element;
use webxdc_realtime_xmpp::wire::{self, mam, muc, share, update, upload};
use webxdc_realtime_xmpp::{Delivery, MAX_PAYLOAD};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::presence::Presence;

use crate::report::own_memory_kib;
use crate::{Part, Row, Scale};

/// The seed of the campaign's run; any other gives another, equally
/// reproducible run.
pub const SEED: u64 = 0x5eed_0001_f022;

const NS_CLIENT: &str = "jabber:client";
const NS_WEBXDC: &str = "urn:xmpp:webxdc:0";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_HINTS: &str = "urn:xmpp:hints";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

const ME: &str = "me@example.org/fuzz";
const TEAM: &str = "team@conference.example.org";
const TEAM_NICK: &str = "me-fuzz";
const OTHER: &str = "other@conference.example.org";
const OTHER_NICK: &str = "me-other";
/// A room whose join is sent but never confirmed: nothing from it counts.
const PENDING: &str = "pending@conference.example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";

/// How large the generator's biggest inputs are. The full scale goes to
/// the limits (payloads at 128000 bytes, base64 of a megabyte, 40000
/// levels of nesting: a server's 256 KiB stanza limit allows about 36000
/// levels of `<a></a>`); the quick scale, a debug build in CI, makes the
/// same kinds of input, the largest ones rarer and smaller (parsing time
/// grows faster than the depth).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// The deepest nesting.
    pub deepest: usize,
    /// One payload in this many is near the 128000-byte limit.
    pub big_one_in: usize,
    /// One damaged base64 in this many is across the limit (up to a
    /// megabyte).
    pub oversize_one_in: usize,
    /// Long texts, many children and oversize base64 are this many times
    /// smaller (the limit-crossing sizes stay as they are).
    pub shrink: usize,
}

impl Sizes {
    /// The sizes of a run at `scale`.
    pub fn of(scale: Scale) -> Sizes {
        match scale {
            Scale::Quick => Sizes {
                deepest: 4096,
                big_one_in: 1000,
                oversize_one_in: 100,
                shrink: 10,
            },
            Scale::Full => Sizes {
                deepest: 40_000,
                big_one_in: 100,
                oversize_one_in: 50,
                shrink: 1,
            },
        }
    }
}

/// Inputs slower than this count as a hang.
const HANG: Duration = Duration::from_secs(10);
/// How many panics are printed in full.
const PRINTED: usize = 5;

// ---------------------------------------------------------------- PRNG

/// SplitMix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn word<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------- XML trees

/// A node of a generated stanza. Text is escaped when written; `Raw` is
/// written as it is (to inject what escaping would prevent).
#[derive(Debug, Clone)]
enum Node {
    El(El),
    Text(String),
    Raw(String),
}

#[derive(Debug, Clone)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl El {
    fn new(name: &str) -> El {
        El {
            name: name.to_owned(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }
    fn attr(mut self, k: &str, v: &str) -> El {
        self.set(k, v);
        self
    }
    fn set(&mut self, k: &str, v: &str) {
        match self.attrs.iter_mut().find(|(n, _)| n == k) {
            Some(a) => a.1 = v.to_owned(),
            None => self.attrs.push((k.to_owned(), v.to_owned())),
        }
    }
    fn child(mut self, c: El) -> El {
        self.children.push(Node::El(c));
        self
    }
    fn text(mut self, t: &str) -> El {
        self.children.push(Node::Text(t.to_owned()));
        self
    }
    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("='");
            escape(v, out);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for c in &self.children {
            match c {
                Node::El(e) => e.write(out),
                Node::Text(t) => escape(t, out),
                Node::Raw(r) => out.push_str(r),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
    fn xml(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
    /// Paths (child indices from the root) of every element, root first.
    fn paths(&self, here: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        out.push(here.clone());
        for (i, c) in self.children.iter().enumerate() {
            if let Node::El(e) = c {
                here.push(i);
                e.paths(here, out);
                here.pop();
            }
        }
    }
    fn at(&mut self, path: &[usize]) -> &mut El {
        match path.split_first() {
            None => self,
            Some((i, rest)) => match &mut self.children[*i] {
                Node::El(e) => e.at(rest),
                _ => unreachable!("paths name elements only"),
            },
        }
    }
}

/// XML escaping, except that characters XML 1.0 cannot hold become
/// character references (which a parser must refuse): hostile input.
fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' => {
                out.push_str(&format!("&#{};", c as u32))
            }
            c => out.push(c),
        }
    }
}

// ---------------------------------------------------------------- base64

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(B64[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict RFC 4648 §4 decoding as `docs/wire-format.md` §2-3 says: the
/// standard alphabet, canonical padding, zero pad bits; ASCII whitespace
/// (the XML kinds) between characters is tolerated.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut table = [u8::MAX; 256];
    for (i, &c) in B64.iter().enumerate() {
        table[c as usize] = i as u8;
    }
    let val = |b: u8| match table[b as usize] {
        u8::MAX => None,
        v => Some(u32::from(v)),
    };
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.len() / 4;
    for (qi, q) in clean.chunks(4).enumerate() {
        let last = qi + 1 == quads;
        let pads = q.iter().rev().take_while(|&&b| b == b'=').count();
        if pads > 2 || (pads > 0 && !last) {
            return None;
        }
        let mut v = 0u32;
        for (i, &b) in q.iter().enumerate() {
            let d = if i >= 4 - pads { 0 } else { val(b)? };
            v = (v << 6) | d;
        }
        out.push((v >> 16) as u8);
        match pads {
            0 => {
                out.push((v >> 8) as u8);
                out.push(v as u8);
            }
            1 => {
                if v & 0xff != 0 {
                    return None;
                }
                out.push((v >> 8) as u8);
            }
            _ => {
                if v & 0xffff != 0 {
                    return None;
                }
            }
        }
    }
    Some(out)
}

// ---------------------------------------------------------------- the engine under test

/// What the validator knows of the engine it checks: the rooms and
/// channels it was given, and the stanza ids it sent. Built from the
/// calls that set the engine up, never read back from it.
#[derive(Debug, Clone)]
pub struct Model {
    /// Our own account.
    pub own: BareJid,
    /// Rooms: JID, our nick there, whether the room confirmed the join.
    pub rooms: Vec<(BareJid, String, bool)>,
    /// Joined channels.
    pub channels: HashMap<ChannelId, (Chat, String)>,
    /// Ids of the frames we sent (their reflection is an echo).
    pub own_ids: HashSet<String>,
}

impl Model {
    fn room(&self, bare: &BareJid) -> Option<&(BareJid, String, bool)> {
        self.rooms.iter().find(|(r, _, _)| r == bare)
    }
    fn channel_for(&self, chat: &Chat, thread: &str) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(_, (c, t))| c == chat && t == thread)
            .map(|(id, _)| *id)
    }
}

struct Fixture {
    engine: Engine,
    model: Model,
    /// The archive query in flight and the iq id of its current page.
    query: Option<(String, String)>,
}

fn bare(s: &str) -> BareJid {
    s.parse().expect("fixture JIDs are valid")
}

/// Threads the channels join (one as long as the rules allow).
fn fixture_threads() -> Vec<String> {
    vec![
        "t-1".into(),
        "t-2".into(),
        "ünïcode thread ✓".into(),
        "h".repeat(THREAD_LIMIT),
    ]
}

impl Fixture {
    fn new() -> Fixture {
        let mut n = 0u64;
        let mut engine = Engine::with_stanza_ids(
            EngineConfig::default(),
            Box::new(move || {
                n += 1;
                format!("fz-{n}")
            }),
        );
        engine.set_online(ME.parse().expect("valid"), false);
        engine.adopt_room(bare(TEAM), TEAM_NICK);
        engine.adopt_room(bare(OTHER), OTHER_NICK);
        engine.join_room(bare(PENDING), "me-pending");
        let mut model = Model {
            own: bare("me@example.org"),
            rooms: vec![
                (bare(TEAM), TEAM_NICK.into(), true),
                (bare(OTHER), OTHER_NICK.into(), true),
                (bare(PENDING), "me-pending".into(), false),
            ],
            channels: HashMap::new(),
            own_ids: HashSet::new(),
        };
        let mut chats = vec![];
        for t in fixture_threads() {
            chats.push((Chat::Group(bare(TEAM)), t.clone()));
            chats.push((Chat::Direct(bare(BOB)), t));
        }
        chats.push((Chat::Group(bare(OTHER)), "t-1".into()));
        chats.push((Chat::Group(bare(PENDING)), "t-1".into()));
        chats.push((Chat::Direct(bare(CAROL)), "t-1".into()));
        let mut team_t1 = None;
        for (chat, thread) in chats {
            // A thread the library refuses to join is simply not joined.
            if let Ok((id, _inbox)) = engine.join(chat.clone(), &thread) {
                if chat == Chat::Group(bare(TEAM)) && thread == "t-1" {
                    team_t1 = Some(id);
                }
                model.channels.insert(id, (chat, thread));
            }
        }
        // Our own frames, whose reflections must come back as echoes.
        if let Some(id) = team_t1 {
            for _ in 0..3 {
                let _ = engine.send(id, b"own frame");
            }
        }
        let _ = engine.query_archive(&bare(TEAM));
        let mut f = Fixture {
            engine,
            model,
            query: None,
        };
        f.take_transmits();
        while f.engine.poll().is_some() {}
        f
    }

    /// Reads what the engine sends: our frames' ids, the archive query.
    fn take_transmits(&mut self) {
        while let Some(el) = self.engine.poll_transmit() {
            match el.name() {
                "message" => {
                    if let Some(id) = el.attr("id") {
                        self.model.own_ids.insert(id.to_owned());
                    }
                }
                "iq" => {
                    let iq_id = el.attr("id").unwrap_or_default().to_owned();
                    if let Some(q) = el.get_child("query", "urn:xmpp:mam:2") {
                        let qid = q.attr("queryid").unwrap_or_default().to_owned();
                        self.query = Some((qid, iq_id));
                    }
                }
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------- the validator

/// A frame as `docs/wire-format.md` §3 reads it from the XML (rules 1-4).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Group (`groupchat`) or 1:1.
    pub group: bool,
    /// The `from`.
    pub from: Jid,
    /// The `to`, if any.
    pub to: Option<Jid>,
    /// The `<thread/>` text.
    pub thread: String,
    /// The payload.
    pub data: Vec<u8>,
    /// The first XEP-0359 origin id.
    pub origin_id: Option<String>,
}

/// An input parsed by the validator, taken apart without recursion when
/// dropped (a deep one would overflow the stack otherwise).
struct Parsed(Option<Element>);

impl std::ops::Deref for Parsed {
    type Target = Element;
    fn deref(&self) -> &Element {
        self.0.as_ref().expect("set until dropped")
    }
}

impl Drop for Parsed {
    fn drop(&mut self) {
        if let Some(el) = self.0.take() {
            wire::frame::dismantle(el);
        }
    }
}

fn parse_input(xml: &str) -> Result<Parsed, String> {
    xml.parse::<Element>()
        .map(|el| Parsed(Some(el)))
        .map_err(|_| "the input is not XML".to_owned())
}

/// The rules' limit on a thread id (docs/wire-format.md, "The thread id").
const THREAD_LIMIT: usize = 1024;

/// The rules' depth limit (docs/wire-format.md §3): the stanza is level 1.
const DEPTH_LIMIT: usize = 64;

/// How deep `el` nests, counted without recursion.
fn depth_of(el: &Element) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(el, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(e.children().map(|c| (c, d + 1)));
    }
    deepest
}

fn webxdc_xs(el: &Element) -> Vec<&Element> {
    el.children()
        .filter(|c| c.name() == "x" && c.ns() == NS_WEBXDC)
        .collect()
}

/// The message's `<thread/>` (exactly one in the stanza's namespace).
fn thread_of(el: &Element) -> Result<String, String> {
    let threads: Vec<&Element> = el
        .children()
        .filter(|c| c.name() == "thread" && c.ns() == el.ns())
        .collect();
    match threads.as_slice() {
        [t] if t.text().len() > THREAD_LIMIT => Err("thread over 1024 bytes".into()),
        [t] if !t.text().trim().is_empty() => Ok(t.text()),
        [_] => Err("empty thread".into()),
        [] => Err("no thread".into()),
        _ => Err("two threads".into()),
    }
}

fn is_stanza_ns(ns: &str) -> bool {
    ns == NS_CLIENT || ns == "jabber:component:accept"
}

/// Rules 1-4 of §3 (a valid frame as such, before privacy and echo).
pub fn read_frame(el: &Element) -> Result<Reading, String> {
    if el.name() != "message" || !is_stanza_ns(&el.ns()) {
        return Err("not a message".into());
    }
    if depth_of(el) > DEPTH_LIMIT {
        return Err("nested too deep".into());
    }
    let xs = webxdc_xs(el);
    let [x] = xs.as_slice() else {
        return Err(format!("{} webxdc <x/>", xs.len()));
    };
    let datas: Vec<&Element> = x
        .children()
        .filter(|c| c.name() == "data" && c.ns() == NS_WEBXDC)
        .collect();
    let [data] = datas.as_slice() else {
        return Err(format!("{} <data/>", datas.len()));
    };
    let group = match el.attr("type") {
        Some("groupchat") => true,
        None | Some("chat") | Some("normal") => false,
        Some(other) => return Err(format!("type {other:?}")),
    };
    let thread = thread_of(el)?;
    let payload = b64_decode(&data.text()).ok_or("bad base64")?;
    if payload.len() > MAX_PAYLOAD {
        return Err("over the limit".into());
    }
    let from = el.attr("from").ok_or("no from")?;
    let from = Jid::new(from).map_err(|_| "bad from")?;
    let to = match el.attr("to") {
        Some(to) => Some(Jid::new(to).map_err(|_| "bad to")?),
        None => None,
    };
    let origin_id = el
        .children()
        .find(|c| c.name() == "origin-id" && c.ns() == NS_SID)
        .and_then(|c| c.attr("id"))
        .map(str::to_owned);
    Ok(Reading {
        group,
        from,
        to,
        thread,
        data: payload,
        origin_id,
    })
}

/// Rules 5-6 of §3: the chat a valid frame belongs to, or why it belongs
/// to none (privacy) or is our own (echo).
pub fn frame_chat(r: &Reading, model: &Model, echo_rule: bool) -> Result<Chat, String> {
    if let Some(to) = &r.to {
        if to.to_bare() != model.own {
            return Err("to someone else".into());
        }
    }
    let from_bare = r.from.to_bare();
    if r.group {
        let (room, nick, joined) = model.room(&from_bare).ok_or("not a room of ours")?;
        if !joined {
            return Err("room not joined".into());
        }
        let resource = r.from.resource().ok_or("from the room itself")?;
        if echo_rule {
            if resource.as_str() == nick {
                return Err("echo (own nick)".into());
            }
            if r.origin_id
                .as_ref()
                .is_some_and(|o| model.own_ids.contains(o))
            {
                return Err("echo (own origin-id)".into());
            }
        }
        Ok(Chat::Group(room.clone()))
    } else {
        if model.room(&from_bare).is_some() {
            return Err("1:1 frame from a room".into());
        }
        Ok(Chat::Direct(from_bare))
    }
}

/// Whether delivering `data` from `from` on `channel` for input `xml` is
/// what `docs/wire-format.md` allows: `Err` says why not. Reads the input
/// with minidom and the rules alone.
pub fn validate_delivery(
    xml: &str,
    model: &Model,
    channel: ChannelId,
    data: &[u8],
    from: &Jid,
) -> Result<(), String> {
    let el = parse_input(xml)?;
    let r = read_frame(&el)?;
    let chat = frame_chat(&r, model, true)?;
    let (ch_chat, ch_thread) = model.channels.get(&channel).ok_or("unknown channel")?;
    if *ch_chat != chat || *ch_thread != r.thread {
        return Err(format!(
            "delivered on {ch_chat:?}/{ch_thread:?}, the frame is for {chat:?}/{:?}",
            r.thread
        ));
    }
    if r.data != data {
        return Err("payload differs".into());
    }
    if r.from != *from {
        return Err("sender differs".into());
    }
    Ok(())
}

/// An [`EngineEvent::UnjoinedInstance`] for `xml`: a valid, private,
/// non-echo frame for an instance no channel joined.
fn validate_unjoined(
    xml: &str,
    model: &Model,
    chat: &Chat,
    thread: &str,
    from: &Jid,
) -> Result<(), String> {
    let el = parse_input(xml)?;
    let r = read_frame(&el)?;
    let real = frame_chat(&r, model, true)?;
    if real != *chat || r.thread != thread || r.from != *from {
        return Err("unjoined-instance event does not match the frame".into());
    }
    if model.channel_for(chat, thread).is_some() {
        return Err("a channel was joined for it".into());
    }
    Ok(())
}

/// A live [`EngineEvent::Update`] for `xml`: §6 (one `<x/>` without
/// `<data/>`, a thread, the privacy rule without the echo rule).
fn validate_update(xml: &str, model: &Model, chat: &Chat, thread: &str) -> Result<(), String> {
    let el = parse_input(xml)?;
    if el.name() != "message" || !is_stanza_ns(&el.ns()) {
        return Err("not a message".into());
    }
    if depth_of(&el) > DEPTH_LIMIT {
        return Err("nested too deep".into());
    }
    let xs = webxdc_xs(&el);
    let [x] = xs.as_slice() else {
        return Err(format!("update with {} webxdc <x/>", xs.len()));
    };
    if x.children()
        .any(|c| c.name() == "data" && c.ns() == NS_WEBXDC)
    {
        return Err("a realtime frame taken for an update".into());
    }
    let group = match el.attr("type") {
        Some("groupchat") => true,
        None | Some("chat") | Some("normal") => false,
        Some(other) => return Err(format!("update of type {other:?}")),
    };
    let t = thread_of(&el)?;
    let from = Jid::new(el.attr("from").ok_or("no from")?).map_err(|_| "bad from")?;
    let to = el
        .attr("to")
        .map(Jid::new)
        .transpose()
        .map_err(|_| "bad to")?;
    let r = Reading {
        group,
        from,
        to,
        thread: t,
        data: Vec::new(),
        origin_id: None,
    };
    let real = frame_chat(&r, model, false)?;
    if real != *chat || r.thread != thread {
        return Err("update event does not match the stanza".into());
    }
    Ok(())
}

/// What the wire decoders, called directly, accepted that the rules
/// refuse (none may be).
fn wire_checks(xml: &str) -> (usize, Vec<String>) {
    let mut accepted = 0;
    let mut invalid = Vec::new();
    let Ok(el) = parse_input(xml) else {
        return (0, invalid);
    };
    // The harness's own typed parsing recurses like any other.
    let shallow = depth_of(&el) <= DEPTH_LIMIT;
    if wire::frame::text_too_deep(xml) == shallow {
        invalid.push("the depth scan of the text disagrees with the parsed depth".into());
    }
    match el.name() {
        "message" => {
            if let Ok(Some(frame)) = wire::decode(&el) {
                accepted += 1;
                match read_frame(&el) {
                    Err(why) => invalid.push(format!("decoder accepted a frame: {why}")),
                    Ok(r) => {
                        if r.data != frame.data
                            || r.thread != frame.thread
                            || r.from != frame.from
                            || r.group != (frame.kind == wire::ChatKind::Group)
                        {
                            invalid.push("decoder read another frame".into());
                        }
                    }
                }
            }
            if let Ok(m) = wire::frame::parse_message(&el) {
                let _ = wire::decode_message(&m);
                if let Ok(Some(u)) = update::decode_update(&m) {
                    accepted += 1;
                    let xs = webxdc_xs(&el);
                    if xs.len() != 1
                        || xs[0].children().any(|c| c.is("data", NS_WEBXDC))
                        || thread_of(&el).ok().as_deref() != Some(u.thread.as_str())
                    {
                        invalid.push("decoder accepted an update the rules refuse".into());
                    }
                }
                let _ = share::decode_share(&m);
                if let Some(a) = mam::read_result(&m) {
                    let _ = wire::decode_message(&a.message);
                    let _ = update::decode_update(&a.message);
                    let _ = share::decode_share(&a.message);
                }
            }
        }
        "presence" if shallow => {
            if let Ok(p) = Presence::try_from(el.clone()) {
                let _ = muc::read_presence(&p);
            }
        }
        "iq" if shallow => {
            let id = el.attr("id").unwrap_or_default().to_owned();
            if let Ok(iq) = Iq::try_from(el.clone()) {
                let _ = mam::read_end(&iq, &id);
                let _ = upload::read_items(&iq, &id);
                let _ = upload::read_info(&iq, &id);
                let _ = upload::read_slot(&iq, &id);
            }
        }
        _ => {}
    }
    (accepted, invalid)
}

// ---------------------------------------------------------------- generation

/// The families of inputs, each a row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Valid frames (group, 1:1, Cheogram's shape, echoes, other rooms):
    /// each must be delivered exactly where the rules say.
    Valid,
    /// Valid frames with 1-4 random mutations of the tree or the text.
    Mutated,
    /// `from`, `to`, `type` and origin-id forgeries.
    Forgery,
    /// Base64 with every kind of damage.
    Base64,
    /// Thread ids: empty, blank, huge, control characters, two, nested.
    Thread,
    /// Deep nesting around and inside frames.
    Nesting,
    /// Long texts, many children, many attributes.
    LongText,
    /// Status updates, shares, MUC presences, archive results, iq answers,
    /// and mutations of them.
    Other,
    /// Random bytes, token soup, random trees.
    Random,
}

const FAMILIES: [(Family, &str, usize); 9] = [
    (Family::Valid, "valid frames (group, 1:1, echoes, other rooms)", 100_000),
    (Family::Mutated, "mutated frames (attributes, namespaces, children duplicated/dropped/nested/reordered, text)", 300_000),
    (Family::Forgery, "from/to/type/origin-id forgeries", 120_000),
    (Family::Base64, "damaged base64 (alphabet, padding, pad bits, whitespace, size limit)", 120_000),
    (Family::Thread, "thread ids (empty, blank, huge, control characters, two, nested)", 80_000),
    (Family::Nesting, "deep nesting (around the 64-level limit, and up to 40000 levels)", 40_000),
    (Family::LongText, "long text, many children and attributes", 12_000),
    (Family::Other, "updates, shares, MUC presences, MAM results, iq answers (and mutations)", 120_000),
    (Family::Random, "random bytes, token soup, random trees", 120_000),
];

/// One generated input.
#[derive(Debug, Clone)]
pub struct Input {
    /// The stanza text.
    pub xml: String,
    /// For [`Family::Valid`]: the chat and thread the frame belongs to
    /// (delivered there if a channel is joined), `None` if it must not be
    /// delivered at all (an echo, a room not joined, a stranger).
    pub expect: Option<Option<(Chat, String)>>,
    /// A presence: it may change room state, so the engine is set up again
    /// after it.
    pub resets: bool,
}

const NICKS: [&str; 5] = ["bob", "alice", "Ünï", "nick with spaces", "x"];

fn payload(rng: &mut Rng, sizes: Sizes) -> Vec<u8> {
    if rng.chance(sizes.big_one_in) {
        let some = 100_000 + rng.below(28_000);
        let n = *rng.pick(&[MAX_PAYLOAD, MAX_PAYLOAD - 1, some]);
        return rng.bytes(n);
    }
    let n = match rng.below(100) {
        0..=59 => rng.below(65),
        60..=89 => 64 + rng.below(2000),
        _ => 2000 + rng.below(14000),
    };
    rng.bytes(n)
}

fn data_el(b64: &str) -> El {
    let d = El::new("data");
    if b64.is_empty() {
        d
    } else {
        d.text(b64)
    }
}

fn webxdc_x(data: El) -> El {
    El::new("x").attr("xmlns", NS_WEBXDC).child(data)
}

fn frame_el(from: &str, to: Option<&str>, type_: Option<&str>, thread: &str, b64: &str) -> El {
    let mut m = El::new("message")
        .attr("xmlns", NS_CLIENT)
        .attr("from", from);
    if let Some(to) = to {
        m.set("to", to);
    }
    if let Some(t) = type_ {
        m.set("type", t);
    }
    m.set("id", "gen-1");
    m.child(El::new("thread").text(thread))
        .child(El::new("no-store").attr("xmlns", NS_HINTS))
        .child(webxdc_x(data_el(b64)))
}

fn wrapped(b64: &str, rng: &mut Rng) -> String {
    let w = 1 + rng.below(76);
    let mut out = String::new();
    for (i, c) in b64.chars().enumerate() {
        if i > 0 && i % w == 0 {
            out.push_str(rng.word(&["\n", "\r\n", " ", "\t", "\n    "]));
        }
        out.push(c);
    }
    out
}

fn thread_choice(rng: &mut Rng) -> String {
    let mut ts = fixture_threads();
    ts.push("unjoined".into());
    rng.pick(&ts).clone()
}

/// A valid frame and where the rules say it goes.
fn valid(rng: &mut Rng, sizes: Sizes) -> (El, Option<(Chat, String)>) {
    let data = payload(rng, sizes);
    let mut b64 = b64_encode(&data);
    if rng.chance(10) {
        b64 = wrapped(&b64, rng);
    }
    let thread = thread_choice(rng);
    let to = *rng.pick(&[Some(ME), Some("me@example.org"), None]);
    let channel = |chat: Chat| Some((chat, thread.clone()));
    match rng.below(8) {
        // A peer in the team room, our shape or Cheogram's.
        0..=2 => {
            let nick = rng.pick(&NICKS);
            let mut m = frame_el(
                &format!("{TEAM}/{nick}"),
                to,
                Some("groupchat"),
                &thread,
                &b64,
            );
            if rng.chance(2) {
                m = m.child(
                    El::new("origin-id")
                        .attr("xmlns", NS_SID)
                        .attr("id", &format!("peer-{}", rng.next())),
                );
            }
            (m, channel(Chat::Group(bare(TEAM))))
        }
        // The other room: only its t-1 is joined.
        3 => {
            let m = frame_el(
                &format!("{OTHER}/bob"),
                to,
                Some("groupchat"),
                &thread,
                &b64,
            );
            (m, channel(Chat::Group(bare(OTHER))))
        }
        // 1:1 from bob (type chat, none or normal; any resource or none).
        4 | 5 => {
            let from = *rng.pick(&["bob@example.org/phone", BOB, "bob@example.org/Lap top"]);
            let ty = *rng.pick(&[Some("chat"), None, Some("normal")]);
            let mut m = frame_el(from, to, ty, &thread, &b64);
            if rng.chance(3) {
                m.children
                    .insert(0, Node::El(El::new("body").text("fallback text")));
            }
            (m, channel(Chat::Direct(bare(BOB))))
        }
        // Our own reflection: by nick or by origin-id. Never delivered.
        6 => {
            let by_nick = rng.chance(2);
            let from = if by_nick {
                format!("{TEAM}/{TEAM_NICK}")
            } else {
                format!("{TEAM}/renamed-by-room")
            };
            let m = frame_el(&from, to, Some("groupchat"), &thread, &b64).child(
                El::new("origin-id")
                    .attr("xmlns", NS_SID)
                    .attr("id", &format!("fz-{}", 1 + rng.below(3))),
            );
            (m, None)
        }
        // The pending room, a stranger room, the team room's bare JID.
        _ => {
            let from = *rng.pick(&[
                "pending@conference.example.org/bob",
                "evil@conference.example.org/bob",
                TEAM,
            ]);
            (frame_el(from, to, Some("groupchat"), &thread, &b64), None)
        }
    }
}

const ATTR_NAMES: [&str; 12] = [
    "type", "from", "to", "id", "xmlns", "parent", "by", "queryid", "xml:lang", "code", "nick",
    "zzz",
];
const NAMESPACES: [&str; 12] = [
    NS_CLIENT,
    NS_WEBXDC,
    "urn:xmpp:webxdc:1",
    "URN:XMPP:WEBXDC:0",
    "urn:xmpp:webxdc:0 ",
    "jabber:server",
    "jabber:component:accept",
    "",
    NS_HINTS,
    NS_SID,
    "urn:xmpp:json:0",
    "urn:xmpp:mam:2",
];
const NAMES: [&str; 14] = [
    "message",
    "x",
    "data",
    "thread",
    "json",
    "presence",
    "iq",
    "body",
    "origin-id",
    "no-store",
    "result",
    "forwarded",
    "error",
    "a",
];
const TYPES: [&str; 11] = [
    "groupchat",
    "chat",
    "normal",
    "headline",
    "error",
    "",
    "GROUPCHAT",
    "group chat",
    "chat ",
    "get",
    "result",
];

fn jid_value(rng: &mut Rng) -> String {
    let fixed = [
        TEAM,
        "team@conference.example.org/me-fuzz",
        "TEAM@conference.example.org/bob",
        "team@Conference.Example.ORG/bob",
        "other@conference.example.org/bob",
        "other@conference.example.org/me-other",
        "pending@conference.example.org/bob",
        "evil@conference.example.org/bob",
        "bob@example.org/phone",
        BOB,
        CAROL,
        "mallory@example.org/x",
        ME,
        "me@example.org",
        "me@example.org/other-device",
        "someone@else.org",
        "@@@",
        "",
        "team@conference.example.org/",
        "team@conference.example.org/ ",
        "team@conference.example.org/bob/extra",
        "team@conference.example.org/bob\u{200b}",
        "conference.example.org",
        "[::1]",
        "a@b@c",
        "team@conference.example.org/\u{1}",
    ];
    if rng.chance(20) {
        return format!("{TEAM}/{}", "n".repeat(1 + rng.below(3000)));
    }
    (*rng.pick(&fixed)).to_owned()
}

fn attr_value(rng: &mut Rng, name: &str) -> String {
    match name {
        "type" => (*rng.pick(&TYPES)).to_owned(),
        "from" | "to" | "by" => jid_value(rng),
        "xmlns" => (*rng.pick(&NAMESPACES)).to_owned(),
        "id" => rng.pick(&["fz-1", "fz-2", "", "peer", "\u{7}"]).to_string(),
        _ => rng
            .pick(&["", "x", "110", "307", "t-1", "&<>'\""])
            .to_string(),
    }
}

fn text_value(rng: &mut Rng) -> String {
    // Long now and then, very long rarely: each costs like a hundred.
    let most = if rng.chance(20) { 200_000 } else { 2000 };
    let big = "A".repeat(1 + rng.below(most));
    rng.pick(&[
        String::new(),
        " ".into(),
        "\n\t".into(),
        "t-1".into(),
        "aGk=".into(),
        "aGk".into(),
        "====".into(),
        "\u{1}\u{2}".into(),
        "]]>".into(),
        "\u{fffe}".into(),
        "{\"json\":1}".into(),
        big,
    ])
    .clone()
}

/// One random change to the tree.
fn mutate_tree(rng: &mut Rng, root: &mut El) {
    let mut paths = Vec::new();
    root.paths(&mut Vec::new(), &mut paths);
    let path = rng.pick(&paths).clone();
    let el = root.at(&path);
    match rng.below(13) {
        0 => {
            let k = *rng.pick(&ATTR_NAMES);
            let v = attr_value(rng, k);
            el.set(k, &v);
        }
        1 => {
            if !el.attrs.is_empty() {
                let i = rng.below(el.attrs.len());
                el.attrs.remove(i);
            }
        }
        2 => {
            let ns = *rng.pick(&NAMESPACES);
            el.set("xmlns", ns);
        }
        3 => {
            if !el.children.is_empty() {
                let i = rng.below(el.children.len());
                let c = el.children[i].clone();
                el.children.insert(i, c);
            }
        }
        4 => {
            if !el.children.is_empty() {
                let i = rng.below(el.children.len());
                el.children.remove(i);
            }
        }
        5 => {
            for i in (1..el.children.len()).rev() {
                let j = rng.below(i + 1);
                el.children.swap(i, j);
            }
        }
        6 => {
            // Nest a child one level deeper.
            if !el.children.is_empty() {
                let i = rng.below(el.children.len());
                let c = el.children.remove(i);
                let mut wrapper = El::new(rng.word(&NAMES));
                if rng.chance(2) {
                    wrapper.set("xmlns", rng.word(&NAMESPACES));
                }
                wrapper.children.push(c);
                el.children.insert(i, Node::El(wrapper));
            }
        }
        7 => {
            // Hoist a grandchild to be a child.
            let grand: Vec<(usize, usize)> = el
                .children
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c {
                    Node::El(e) if !e.children.is_empty() => Some((i, e.children.len())),
                    _ => None,
                })
                .collect();
            if !grand.is_empty() {
                let (i, n) = *rng.pick(&grand);
                let j = rng.below(n);
                let g = match &mut el.children[i] {
                    Node::El(e) => e.children.remove(j),
                    _ => unreachable!("filtered to elements"),
                };
                el.children.push(g);
            }
        }
        8 => el.name = (*rng.pick(&NAMES)).to_owned(),
        9 => {
            // The same namespace through a prefix, or a prefix never bound.
            let local = el.name.rsplit(':').next().unwrap_or("x").to_owned();
            el.name = format!("p:{local}");
            if rng.chance(4) {
                el.set("xmlns:p", rng.word(&NAMESPACES));
            } else {
                el.set("xmlns:p", NS_WEBXDC);
            }
        }
        10 => {
            let t = text_value(rng);
            let texts: Vec<usize> = (0..el.children.len())
                .filter(|&i| matches!(el.children[i], Node::Text(_)))
                .collect();
            match texts.as_slice() {
                [] => el.children.push(Node::Text(t)),
                ts => {
                    let i = *rng.pick(ts);
                    el.children[i] = Node::Text(t);
                }
            }
        }
        11 => {
            let extra = match rng.below(6) {
                0 => webxdc_x(data_el("aGk=")),
                1 => El::new("data").attr("xmlns", NS_WEBXDC).text("aGk="),
                2 => El::new("thread").text("t-2"),
                3 => El::new("origin-id")
                    .attr("xmlns", NS_SID)
                    .attr("id", "fz-1"),
                4 => El::new("error")
                    .attr("type", "cancel")
                    .child(El::new("gone").attr("xmlns", "urn:ietf:params:xml:ns:xmpp-stanzas")),
                _ => El::new("unknown").attr("xmlns", "urn:example"),
            };
            let i = rng.below(el.children.len() + 1);
            el.children.insert(i, Node::El(extra));
        }
        _ => {
            let raw = rng
                .pick(&["<!-- c -->", "<![CDATA[aGk=]]>", "&#65;", "<?pi x?>", " "])
                .to_string();
            let i = rng.below(el.children.len() + 1);
            el.children.insert(i, Node::Raw(raw));
        }
    }
}

const TOKENS: [&str; 24] = [
    "<",
    ">",
    "</",
    "/>",
    "message",
    "x",
    "data",
    " xmlns='urn:xmpp:webxdc:0'",
    "'",
    "\"",
    "=",
    "&",
    "&amp;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version='1.0'?>",
    "<!DOCTYPE m [<!ENTITY e 'eeeeeeeeee'>]>",
    "&e;",
    "aGk=",
    " ",
    "\u{0}",
    "&#x10FFFF;",
];

/// One random change to the text (may break well-formedness).
fn mutate_text(rng: &mut Rng, xml: &mut String) {
    let boundary = |s: &str, i: usize| {
        let mut i = i.min(s.len());
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let at = boundary(xml, rng.below(xml.len() + 1));
    match rng.below(4) {
        0 => xml.truncate(at),
        1 => xml.insert_str(at, rng.word(&TOKENS)),
        2 => {
            let end = boundary(xml, at + rng.below(16));
            xml.replace_range(at..end, "");
        }
        _ => {
            let end = boundary(xml, at + rng.below(64));
            let piece = xml[at..end].to_owned();
            xml.insert_str(end, &piece);
        }
    }
}

fn damage_b64(rng: &mut Rng, b64: &str, sizes: Sizes) -> String {
    let mut s = b64.to_owned();
    let at = |rng: &mut Rng, s: &str| rng.below(s.len() + 1);
    // Sizes across the limit, rarer in a quick run (each costs as much as
    // hundreds of small inputs).
    if rng.chance(sizes.oversize_one_in) {
        let n = match rng.below(2) {
            0 => *rng.pick(&[MAX_PAYLOAD, MAX_PAYLOAD + 1, MAX_PAYLOAD + 3]),
            _ => 0,
        };
        if n > 0 {
            return b64_encode(&vec![0x55; n]);
        }
        let huge = 1_000_000 / sizes.shrink;
        return "A".repeat(*rng.pick(&[MAX_PAYLOAD / 3 * 4 + 4, 170_668, 170_672, huge]));
    }
    match rng.below(16) {
        0 => {
            while s.ends_with('=') {
                s.pop();
            }
        }
        1 => s.push('='),
        2 => {
            let i = at(rng, &s);
            s.insert(i, '=');
        }
        3 => {
            let n = 1 + rng.below(3);
            s.truncate(s.len().saturating_sub(n));
        }
        4 => {
            let c = *rng.pick(&['!', '*', '-', '_', 'é', '\u{0}', '.', ':']);
            if !s.is_empty() {
                let i = rng.below(s.len());
                s.replace_range(i..i + 1, &c.to_string());
            }
        }
        5 => s = s.replace('+', "-").replace('/', "_"),
        6 => {
            // Non-zero pad bits: the last character before the padding.
            let pads = s.chars().rev().take_while(|&c| c == '=').count();
            if pads > 0 && s.len() > pads {
                let i = s.len() - pads - 1;
                let c = s.as_bytes()[i];
                let p = B64.iter().position(|&b| b == c).unwrap_or(0);
                let flipped = B64[(p ^ 1) % 64] as char;
                s.replace_range(i..i + 1, &flipped.to_string());
            }
        }
        7 => {
            let i = at(rng, &s);
            let ws = *rng.pick(&[" ", "\n", "\t", "\r\n", "\u{a0}", "\u{3000}", "\u{c}"]);
            s.insert_str(i, ws);
        }
        8 => s = format!("{s}{s}"),
        9 => s = s.replace('A', "\u{ff21}"),
        10 => s = format!("{s}\n{s}"),
        11 => s = (*rng.pick(&["", "=", "==", "====", "A", "AA==", "A===", "AB=C"])).to_owned(),
        12 => s = format!(" \n{s}\n "),
        13 => s = s.chars().rev().collect(),
        14 => s = b64_encode(s.as_bytes()),
        _ => s = s.to_lowercase(),
    }
    s
}

/// Thread texts, and thread elements, that a frame may carry.
fn damage_thread(rng: &mut Rng, m: &mut El, sizes: Sizes) {
    let Some(pos) = m
        .children
        .iter()
        .position(|c| matches!(c, Node::El(e) if e.name == "thread"))
    else {
        return;
    };
    let huge = "h".repeat(*rng.pick(&[
        1023,
        1024,
        1025,
        2000,
        65_536 / sizes.shrink,
        300_000 / sizes.shrink,
    ]));
    let t = match rng.below(14) {
        0 => El::new("thread"),
        1 => El::new("thread").text(rng.word(&[" ", "\n\t ", "\u{a0}"])),
        2 => El::new("thread").text(&huge),
        3 => El::new("thread").text(rng.word(&["t-1 ", " t-1", "t-1\n", "T-1", "t\u{2d}1"])),
        4 => El::new("thread").text("t-\u{1}1"),
        5 => El::new("thread")
            .text("t-1")
            .attr("parent", rng.word(&["", "p", "t-2"])),
        6 => {
            m.children
                .insert(pos, Node::El(El::new("thread").text("t-2")));
            return;
        }
        7 => El::new("thread").attr("xmlns", "urn:example").text("t-1"),
        8 => {
            let mut t = El::new("thread").text("t-");
            t.children.push(Node::El(El::new("b")));
            t.text("1")
        }
        9 => {
            let mut t = El::new("thread");
            t.children.push(Node::Raw("<![CDATA[t-1]]>".into()));
            t
        }
        10 => {
            let mut t = El::new("thread");
            t.children.push(Node::Raw("t&#45;1".into()));
            t
        }
        11 => El::new("thread").text("ünïcode thread ✓"),
        12 => {
            m.children.remove(pos);
            return;
        }
        _ => El::new("thread").text("\u{fffe}"),
    };
    m.children[pos] = Node::El(t);
}

fn forge(rng: &mut Rng, m: &mut El) {
    match rng.below(6) {
        0 => m.set("from", &jid_value(rng)),
        1 => m.set("to", &jid_value(rng)),
        2 => m.set("type", rng.word(&TYPES)),
        3 => {
            m.attrs.retain(|(k, _)| k != "from");
        }
        4 => {
            // Our own origin-id on a stranger's frame, or several.
            for _ in 0..1 + rng.below(2) {
                let id = *rng.pick(&["fz-1", "fz-2", "fz-3", "peer"]);
                m.children.push(Node::El(
                    El::new("origin-id").attr("xmlns", NS_SID).attr("id", id),
                ));
            }
        }
        _ => {
            // Two forgeries at once.
            m.set("from", &jid_value(rng));
            m.set("type", rng.word(&TYPES));
        }
    }
}

/// Deep nesting as raw text: the generator's own trees stay shallow (so
/// that only the library's recursion is put to the test).
fn nest(rng: &mut Rng, m: El, deepest: usize) -> El {
    // The deepest are rare: each costs the harness's own parse (not the
    // engine's, which refuses them from the text) up to a second.
    let depth = match rng.below(2000) {
        0 => deepest,
        1..=2 => deepest.min(20_000),
        3..=40 => deepest.min(4096),
        41..=400 => *rng.pick(&[128, 512]),
        // Around the limit, the stanza and the <x/> being levels 1 and 2.
        401..=1200 => *rng.pick(&[58, 59, 60, 61, 62, 63, 64, 65]),
        _ => *rng.pick(&[1, 8, 20, 32]),
    };
    let deep = |inside: &str| {
        format!(
            "<a xmlns='urn:example'>{}{inside}{}</a>",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        )
    };
    let mut m = m;
    match rng.below(4) {
        // Inside the <x/>: the frame stays valid and must be delivered.
        0 => {
            for c in &mut m.children {
                if let Node::El(x) = c {
                    if x.name == "x" {
                        x.children.push(Node::Raw(deep("")));
                        break;
                    }
                }
            }
        }
        // A second <x/> with data deep down (not a child of the message).
        1 => m.children.push(Node::Raw(deep(
            "<x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x>",
        ))),
        // The whole frame deep inside another message, as if forwarded.
        2 => {
            let inner = m.xml();
            m.children = vec![Node::Raw(deep(&inner))];
        }
        _ => m.children.push(Node::Raw(deep(""))),
    }
    m
}

fn long_text(rng: &mut Rng, m: &mut El, sizes: Sizes) {
    let most = |n: usize| (n / sizes.shrink).max(1);
    match rng.below(7) {
        0 => m.children.push(Node::El(
            El::new("body").text(&"b".repeat(1 + rng.below(most(300_000)))),
        )),
        1 => {
            for i in 0..1 + rng.below(most(5000)) {
                m.children.push(Node::El(
                    El::new("u")
                        .attr("xmlns", "urn:example")
                        .attr("n", &i.to_string()),
                ));
            }
        }
        2 => {
            for i in 0..1 + rng.below(most(1000)) {
                m.set(&format!("a{i}"), "v");
            }
        }
        3 => m.set("id", &"i".repeat(1 + rng.below(most(500_000)))),
        4 => {
            for _ in 0..1 + rng.below(most(1000)) {
                m.children.push(Node::El(webxdc_x(data_el("aGk="))));
            }
        }
        5 => {
            for c in &mut m.children {
                if let Node::El(x) = c {
                    if x.name == "x" {
                        for _ in 0..1 + rng.below(most(1000)) {
                            x.children.push(Node::El(data_el("aGk=")));
                        }
                    }
                }
            }
        }
        _ => {
            for _ in 0..1 + rng.below(most(2000)) {
                m.children.push(Node::El(
                    El::new("origin-id")
                        .attr("xmlns", NS_SID)
                        .attr("id", "peer"),
                ));
            }
        }
    }
}

/// Status updates, shares, presences, archive results, iq answers.
fn other_stanza(rng: &mut Rng, query: Option<&(String, String)>) -> (El, bool) {
    let (qid, iq_id) = query
        .cloned()
        .unwrap_or_else(|| ("q".to_owned(), "q".to_owned()));
    let thread = thread_choice(rng);
    let json = *rng.pick(&["{\"a\":1}", "null", "{bad", "[1,2]"]);
    let update = |from: &str, ty: &str| {
        El::new("message")
            .attr("xmlns", NS_CLIENT)
            .attr("from", from)
            .attr("type", ty)
            .child(El::new("thread").text(&thread))
            .child(El::new("store").attr("xmlns", NS_HINTS))
            .child(
                El::new("x")
                    .attr("xmlns", NS_WEBXDC)
                    .child(El::new("json").attr("xmlns", "urn:xmpp:json:0").text(json)),
            )
    };
    match rng.below(9) {
        0 => (update(&format!("{TEAM}/bob"), "groupchat"), false),
        1 => (update("bob@example.org/phone", "chat"), false),
        2 => {
            let share = El::new("message")
                .attr("xmlns", NS_CLIENT)
                .attr("from", &format!("{TEAM}/bob"))
                .attr("type", "groupchat")
                .child(El::new("thread").text(&thread))
                .child(El::new("body").text("https://up.example.org/a.xdc"))
                .child(
                    El::new("x")
                        .attr("xmlns", "jabber:x:oob")
                        .child(El::new("url").text("https://up.example.org/a.xdc")),
                );
            (share, false)
        }
        3 | 4 => {
            // A room presence: ours (110), a kick, another occupant, an error.
            let room = *rng.pick(&[TEAM, OTHER, PENDING, "evil@conference.example.org"]);
            let nick = *rng.pick(&[TEAM_NICK, OTHER_NICK, "me-pending", "bob", "renamed"]);
            let mut p = El::new("presence")
                .attr("xmlns", NS_CLIENT)
                .attr("from", &format!("{room}/{nick}"));
            let ty = *rng.pick(&[None, Some("unavailable"), Some("error")]);
            if let Some(ty) = ty {
                p.set("type", ty);
            }
            let mut x = El::new("x").attr("xmlns", NS_MUC_USER).child(
                El::new("item")
                    .attr("affiliation", "member")
                    .attr("role", "participant"),
            );
            for _ in 0..rng.below(3) {
                let code = *rng.pick(&[
                    "110", "307", "301", "303", "321", "322", "332", "333", "210", "100", "abc",
                ]);
                x = x.child(El::new("status").attr("code", code));
            }
            if rng.chance(6) {
                x = x.child(El::new("destroy"));
            }
            p = p.child(x);
            if ty == Some("error") {
                p = p.child(
                    El::new("error").attr("type", "cancel").child(
                        El::new(rng.word(&["forbidden", "conflict", "item-not-found"]))
                            .attr("xmlns", "urn:ietf:params:xml:ns:xmpp-stanzas"),
                    ),
                );
            }
            (p, true)
        }
        5 | 6 => {
            // An archive result holding a frame (never to be delivered) or an update.
            let inner = if rng.chance(2) {
                frame_el(
                    &format!("{TEAM}/bob"),
                    None,
                    Some("groupchat"),
                    &thread,
                    "aGk=",
                )
            } else {
                update(&format!("{TEAM}/bob"), "groupchat")
            };
            let archive = *rng.pick(&[TEAM, TEAM, OTHER, "bob@example.org"]);
            let m = El::new("message")
                .attr("xmlns", NS_CLIENT)
                .attr("from", archive)
                .attr("to", ME)
                .child(
                    El::new("result")
                        .attr("xmlns", "urn:xmpp:mam:2")
                        .attr("queryid", rng.word(&[qid.as_str(), "other"]))
                        .attr("id", "arch-1")
                        .child(
                            El::new("forwarded")
                                .attr("xmlns", "urn:xmpp:forward:0")
                                .child(
                                    El::new("delay")
                                        .attr("xmlns", "urn:xmpp:delay")
                                        .attr("stamp", "2026-11-22T10:00:00Z"),
                                )
                                .child(inner),
                        ),
                );
            (m, false)
        }
        7 => {
            // The end of an archive page.
            let complete = *rng.pick(&["true", "false"]);
            let iq = El::new("iq")
                .attr("xmlns", NS_CLIENT)
                .attr("type", "result")
                .attr("id", rng.word(&[iq_id.as_str(), "x"]))
                .attr("from", rng.word(&[TEAM, OTHER]))
                .child(
                    El::new("fin")
                        .attr("xmlns", "urn:xmpp:mam:2")
                        .attr("complete", complete)
                        .child(
                            El::new("set")
                                .attr("xmlns", "http://jabber.org/protocol/rsm")
                                .child(El::new("last").text("arch-9")),
                        ),
                );
            (iq, false)
        }
        _ => {
            let iq = El::new("iq")
                .attr("xmlns", NS_CLIENT)
                .attr("type", rng.word(&["result", "error", "set"]))
                .attr("id", "up-1")
                .attr("from", "upload.example.org")
                .child(
                    El::new("slot")
                        .attr("xmlns", "urn:xmpp:http:upload:0")
                        .child(El::new("put").attr("url", "https://up.example.org/p"))
                        .child(El::new("get").attr("url", "https://up.example.org/g")),
                );
            (iq, false)
        }
    }
}

fn random_input(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => {
            let n = rng.below(300);
            String::from_utf8_lossy(&rng.bytes(n)).into_owned()
        }
        1 => {
            let mut s = String::new();
            for _ in 0..rng.below(60) {
                s.push_str(rng.word(&TOKENS));
            }
            s
        }
        _ => {
            fn tree(rng: &mut Rng, depth: usize) -> El {
                let mut e = El::new(rng.word(&NAMES));
                for _ in 0..rng.below(3) {
                    let k = *rng.pick(&ATTR_NAMES);
                    let v = attr_value(rng, k);
                    e.set(k, &v);
                }
                if depth > 0 {
                    for _ in 0..rng.below(4) {
                        if rng.chance(3) {
                            e.children.push(Node::Text(text_value(rng)));
                        } else {
                            let c = tree(rng, depth - 1);
                            e.children.push(Node::El(c));
                        }
                    }
                }
                e
            }
            let mut root = tree(rng, 4);
            root.name = (*rng.pick(&["message", "presence", "iq", "x"])).to_owned();
            root.set("xmlns", NS_CLIENT);
            root.xml()
        }
    }
}

/// The input `index` of `family` in the run seeded `seed` (what the run
/// fed, for reproducing one input alone). `query` is the archive query
/// in flight (query id, iq id), which archive answers name.
pub fn input(
    seed: u64,
    family: Family,
    index: u64,
    query: Option<&(String, String)>,
    sizes: Sizes,
) -> Input {
    let mut rng = Rng::new(
        seed ^ (family as u64 + 1).wrapping_mul(0x1000_0000_0000_0001) ^ index.wrapping_mul(0x9e37),
    );
    let _ = rng.next();
    let mut resets = false;
    let mut expect = None;
    let xml = match family {
        Family::Valid => {
            let (m, ch) = valid(&mut rng, sizes);
            expect = Some(ch);
            m.xml()
        }
        Family::Mutated => {
            let (mut m, _) = valid(&mut rng, sizes);
            for _ in 0..1 + rng.below(4) {
                mutate_tree(&mut rng, &mut m);
            }
            let mut xml = m.xml();
            if rng.chance(4) {
                mutate_text(&mut rng, &mut xml);
            }
            xml
        }
        Family::Forgery => {
            let (mut m, _) = valid(&mut rng, sizes);
            forge(&mut rng, &mut m);
            m.xml()
        }
        Family::Base64 => {
            let (mut m, _) = valid(&mut rng, sizes);
            for c in &mut m.children {
                if let Node::El(x) = c {
                    if x.name == "x" {
                        let old = match x.children.first() {
                            Some(Node::El(d)) => d.children.iter().find_map(|t| match t {
                                Node::Text(t) => Some(t.clone()),
                                _ => None,
                            }),
                            _ => None,
                        }
                        .unwrap_or_default();
                        let damaged = damage_b64(&mut rng, &old, sizes);
                        let mut d = El::new("data");
                        match rng.below(6) {
                            0 => d.children.push(Node::Raw(format!("<![CDATA[{damaged}]]>"))),
                            1 => {
                                let half = damaged.len() / 2;
                                let half = (0..=half)
                                    .rev()
                                    .find(|&i| damaged.is_char_boundary(i))
                                    .unwrap_or(0);
                                d.children.push(Node::Text(damaged[..half].to_owned()));
                                d.children.push(Node::El(El::new(rng.word(&["b", "data"]))));
                                d.children.push(Node::Text(damaged[half..].to_owned()));
                            }
                            _ => d.children.push(Node::Text(damaged)),
                        }
                        x.children = vec![Node::El(d)];
                    }
                }
            }
            m.xml()
        }
        Family::Thread => {
            let (mut m, _) = valid(&mut rng, sizes);
            damage_thread(&mut rng, &mut m, sizes);
            m.xml()
        }
        Family::Nesting => {
            let (m, _) = valid(&mut rng, sizes);
            nest(&mut rng, m, sizes.deepest).xml()
        }
        Family::LongText => {
            let (mut m, _) = valid(&mut rng, sizes);
            long_text(&mut rng, &mut m, sizes);
            m.xml()
        }
        Family::Other => {
            let (mut s, is_presence) = other_stanza(&mut rng, query);
            resets = is_presence;
            if rng.chance(2) {
                for _ in 0..1 + rng.below(3) {
                    mutate_tree(&mut rng, &mut s);
                }
                // A mutation may have made anything a presence.
                resets = true;
            }
            s.xml()
        }
        Family::Random => {
            resets = true;
            random_input(&mut rng)
        }
    };
    Input {
        xml,
        expect,
        resets,
    }
}

// ---------------------------------------------------------------- the run

#[derive(Debug, Default)]
struct Tally {
    tried: u64,
    panics: u64,
    delivered: u64,
    invalid: u64,
    missed: u64,
    decoder_accepted: u64,
    decoder_invalid: u64,
    events_checked: u64,
    invalid_events: u64,
    slowest: Duration,
    slowest_engine: Duration,
    elapsed: Duration,
}

/// Feeds one input; returns what went wrong, to print.
fn feed(fx: &mut Fixture, input: &Input, t: &mut Tally) -> Vec<String> {
    let mut problems = Vec::new();
    let started = Instant::now();
    let xml = input.xml.as_str();
    let engine_run = panic::catch_unwind(AssertUnwindSafe(|| {
        let handled = fx.engine.handle_xml(xml);
        let in_engine = started.elapsed();
        let mut outs = Vec::new();
        while let Some(o) = fx.engine.poll() {
            outs.push(o);
        }
        (handled, outs, in_engine)
    }));
    let wire_run = panic::catch_unwind(|| wire_checks(xml));
    let took = started.elapsed();
    t.slowest = t.slowest.max(took);
    if took > HANG {
        problems.push(format!("took {took:?}"));
    }
    t.tried += 1;
    match wire_run {
        Ok((accepted, invalid)) => {
            t.decoder_accepted += accepted as u64;
            t.decoder_invalid += invalid.len() as u64;
            problems.extend(invalid);
        }
        Err(_) => {
            t.panics += 1;
            problems.push("panic in a wire decoder".into());
        }
    }
    let (handled, outs) = match engine_run {
        Ok((handled, outs, in_engine)) => {
            t.slowest_engine = t.slowest_engine.max(in_engine);
            (handled, outs)
        }
        Err(_) => {
            t.panics += 1;
            problems.push("panic in the engine".into());
            *fx = Fixture::new();
            return problems;
        }
    };
    let mut payloads = Vec::new();
    let mut query_ended = false;
    for o in outs {
        match o {
            Output::Delivery {
                channel,
                delivery: Delivery::Payload(p),
            } => payloads.push((channel, p)),
            Output::Delivery { .. } => {}
            Output::Event(EngineEvent::UnjoinedInstance { chat, thread, from }) => {
                t.events_checked += 1;
                if let Err(why) = validate_unjoined(xml, &fx.model, &chat, &thread, &from) {
                    t.invalid_events += 1;
                    problems.push(format!("unjoined-instance event: {why}"));
                }
            }
            Output::Event(EngineEvent::Update { chat, frame }) => {
                t.events_checked += 1;
                if let Err(why) = validate_update(xml, &fx.model, &chat, &frame.thread) {
                    t.invalid_events += 1;
                    problems.push(format!("update event: {why}"));
                }
            }
            Output::Event(EngineEvent::ArchivedUpdate { room, .. })
            | Output::Event(EngineEvent::ArchivedApp { room, .. }) => {
                t.events_checked += 1;
                if room != bare(TEAM) {
                    t.invalid_events += 1;
                    problems.push(format!("archived update from {room}, never asked"));
                }
            }
            Output::Event(EngineEvent::ArchiveEnd { .. }) => query_ended = true,
            _ => {}
        }
    }
    if payloads.len() > 1 {
        t.invalid += payloads.len() as u64 - 1;
        problems.push(format!("one stanza, {} deliveries", payloads.len()));
    }
    match (&handled, payloads.first()) {
        (Handled::Delivered(id), Some((ch, _))) if id == ch => {}
        (Handled::Delivered(_), _) | (_, Some(_)) => {
            t.invalid += 1;
            problems.push(format!("handled {handled:?} disagrees with the deliveries"));
        }
        _ => {}
    }
    for (channel, p) in &payloads {
        t.delivered += 1;
        if let Err(why) = validate_delivery(xml, &fx.model, *channel, &p.data, &p.from) {
            t.invalid += 1;
            problems.push(format!("invalid delivery: {why}"));
        }
    }
    if let Some(dest) = &input.expect {
        // Where the frame belongs, if a channel there is joined.
        let expect = dest
            .clone()
            .filter(|(chat, thread)| fx.model.channel_for(chat, thread).is_some());
        let got = payloads
            .first()
            .and_then(|(ch, _)| fx.model.channels.get(ch).cloned());
        if got != expect {
            t.missed += 1;
            problems.push(format!(
                "a valid frame for {expect:?} went to {got:?} ({handled:?})"
            ));
        }
    }
    if input.resets {
        *fx = Fixture::new();
    } else if query_ended || fx.engine.poll_transmit().is_some() {
        // The archive query ended or turned a page: ask again, so archive
        // answers keep meeting a query in flight.
        let _ = fx.engine.query_archive(&bare(TEAM));
        fx.take_transmits();
    }
    problems
}

/// Runs `count` inputs of `family` from `seed`; prints the first problems.
fn run_family(seed: u64, family: Family, count: u64, sizes: Sizes, printed: &mut usize) -> Tally {
    let mut t = Tally::default();
    let mut fx = Fixture::new();
    let started = Instant::now();
    for i in 0..count {
        let input = input(seed, family, i, fx.query.as_ref(), sizes);
        let problems = feed(&mut fx, &input, &mut t);
        if !problems.is_empty() && *printed < PRINTED {
            *printed += 1;
            let shown: String = input.xml.chars().take(600).collect();
            eprintln!(
                "fuzz: seed {seed:#x} family {family:?} input {i}: {}\n  {shown}",
                problems.join("; ")
            );
        }
    }
    t.elapsed = started.elapsed();
    eprintln!("fuzz: {family:?}: {count} inputs in {:.1?}", t.elapsed);
    t
}

/// Runs this part at `scale`: one row per family and a summary row.
pub async fn run(scale: Scale) -> Vec<Row> {
    let divisor = match scale {
        Scale::Quick => 50,
        Scale::Full => 1,
    };
    let sizes = Sizes::of(scale);
    // The generator's own panics (none expected) must not be mistaken for
    // the library's: it runs outside catch_unwind. Inside, the default hook
    // would print every caught panic; the first few are printed here.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = tokio::task::spawn_blocking(move || {
        let mut printed = 0;
        let mut rows = Vec::new();
        let mut total = Tally::default();
        let started = Instant::now();
        for (family, case, full) in FAMILIES {
            let count = (full / divisor) as u64;
            let t = run_family(SEED, family, count, sizes, &mut printed);
            let (_, peak) = own_memory_kib();
            let must_deliver = family == Family::Valid;
            let held = t.panics == 0
                && t.invalid == 0
                && t.decoder_invalid == 0
                && t.invalid_events == 0
                && t.missed == 0
                && t.slowest < HANG
                && (!must_deliver || t.delivered > 0);
            let rate = t.tried as f64 / t.elapsed.as_secs_f64().max(1e-9);
            rows.push(
                Row::new(
                    Part::Hostile,
                    format!("{case}: {count} inputs, seed {SEED:#x}"),
                    format!(
                        "tried {}, panics {}, invalid deliveries {} (of {} delivered{}), \
                         decoder acceptances or depth scans against the rules {} (of {} acceptances), \
                         invalid events {} (of {}), slowest input {:.1} ms in the engine \
                         ({:.1} ms with the checks), {:.0} inputs/s",
                        t.tried,
                        t.panics,
                        t.invalid,
                        t.delivered,
                        if must_deliver {
                            format!(", valid frames not delivered as the rules say {}", t.missed)
                        } else {
                            String::new()
                        },
                        t.decoder_invalid,
                        t.decoder_accepted,
                        t.invalid_events,
                        t.events_checked,
                        t.slowest_engine.as_secs_f64() * 1e3,
                        t.slowest.as_secs_f64() * 1e3,
                        rate
                    ),
                    held,
                )
                .with_memory(format!("peak {:.1} MiB (VmHWM)", peak as f64 / 1024.0)),
            );
            total.tried += t.tried;
            total.panics += t.panics;
            total.invalid += t.invalid + t.decoder_invalid + t.invalid_events + t.missed;
            total.delivered += t.delivered;
            total.slowest = total.slowest.max(t.slowest);
            total.slowest_engine = total.slowest_engine.max(t.slowest_engine);
        }
        let took = started.elapsed();
        let (now, peak) = own_memory_kib();
        let held = rows.iter().all(|r| r.held);
        rows.push(
            Row::new(
                Part::Hostile,
                format!("all families: {} inputs through Engine::handle_xml and the wire decoders", total.tried),
                format!(
                    "tried {}, panics {}, invalid deliveries or acceptances {}, delivered {}, \
                     {:.1} s, {:.0} inputs/s, slowest input {:.1} ms in the engine ({:.1} ms with the checks)",
                    total.tried,
                    total.panics,
                    total.invalid,
                    total.delivered,
                    took.as_secs_f64(),
                    total.tried as f64 / took.as_secs_f64().max(1e-9),
                    total.slowest_engine.as_secs_f64() * 1e3,
                    total.slowest.as_secs_f64() * 1e3
                ),
                held,
            )
            .with_memory(format!(
                "peak {:.1} MiB (VmHWM), {:.1} MiB at the end",
                peak as f64 / 1024.0,
                now as f64 / 1024.0
            )),
        );
        eprintln!("fuzz: {} inputs in {took:.1?}", total.tried);
        rows
    })
    .await;
    panic::set_hook(hook);
    result.expect("the fuzz run itself does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_is_strict() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(37)).collect();
            assert_eq!(b64_decode(&b64_encode(&data)).as_deref(), Some(&data[..]));
        }
        for bad in [
            "aGk",
            "aG=k",
            "aGl=",
            "aGk==",
            "a!k=",
            "aGk=aGk=",
            "aGk=\u{a0}",
        ] {
            assert_eq!(b64_decode(bad), None, "{bad}");
        }
        assert_eq!(b64_decode("aG\n k=").as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn inputs_are_reproducible() {
        for f in [Family::Mutated, Family::Random, Family::Other] {
            assert_eq!(
                input(7, f, 3, None, Sizes::of(Scale::Quick)).xml,
                input(7, f, 3, None, Sizes::of(Scale::Quick)).xml
            );
        }
    }
}
