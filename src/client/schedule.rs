//! The order in which queued stanzas go to the stream.
//!
//! The engine queues stanzas in the order they were made; sent in that
//! order, a small payload of one channel waits behind every chunk another
//! channel queued before it (apps send files as 126000-byte payloads back
//! to back). The [`Scheduler`] takes the engine's stanzas into one FIFO
//! lane per channel (destination and `<thread>`) and gives the lanes turns
//! round robin: a turn sends stanzas until it has sent [`TURN_BYTES`] (at
//! least one). A channel's own stanzas keep their order (the contract's
//! per-sender order is per channel); a small payload of another channel
//! waits behind at most one full-size payload of each busy lane, and a
//! channel that sends small payloads faster than the window lets full-size
//! ones through sends many per turn, so it builds no backlog of its own.
//!
//! Stanzas that are not a channel's (presence, messages without a thread)
//! keep their place against everything: one of them goes out after every
//! stanza queued before it and before every stanza queued after it, so
//! that, for example, leaving a room never overtakes the payloads sent to
//! it before. IQs (archive queries, uploads, answers) share one lane of
//! their own: nothing the rooms do depends on their order against
//! messages.

use std::collections::VecDeque;

use jid::BareJid;
use minidom::Element;
use xmpp_parsers::stanza::Stanza;

/// How many bytes (about: [`weight`]) a lane sends per turn: a few dozen
/// small payloads, or one full-size one.
const TURN_BYTES: usize = 16 * 1024;

/// What a stanza is ordered with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lane {
    /// A channel's messages: destination and thread.
    Channel(Option<BareJid>, String),
    /// Every IQ.
    Iq,
}

/// One round-robin group: the lanes with stanzas queued since the last
/// barrier.
#[derive(Debug)]
struct Round {
    /// Lanes in turn order, none empty; the front one has the turn, and
    /// goes to the back when its turn ends.
    lanes: VecDeque<(Lane, VecDeque<(Stanza, usize)>)>,
    /// What the front lane may still send in its turn.
    turn_left: usize,
}

impl Round {
    fn new() -> Round {
        Round {
            lanes: VecDeque::new(),
            turn_left: TURN_BYTES,
        }
    }
}

/// Either a group of lanes or one stanza that keeps its place.
#[derive(Debug)]
enum Segment {
    Round(Round),
    Barrier(Box<Stanza>, usize),
}

/// Stanzas taken from the engine, waiting for room in the send window.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    segments: VecDeque<Segment>,
    len: usize,
}

impl Scheduler {
    /// Queues `stanza`.
    pub(crate) fn push(&mut self, stanza: Stanza) {
        let weight = weight(&stanza);
        self.len += 1;
        let lane = match &stanza {
            Stanza::Message(m) => m
                .thread
                .as_ref()
                .map(|t| Lane::Channel(m.to.as_ref().map(|j| j.to_bare()), t.id.clone())),
            Stanza::Iq(_) => Some(Lane::Iq),
            Stanza::Presence(_) => None,
        };
        let Some(lane) = lane else {
            self.segments
                .push_back(Segment::Barrier(Box::new(stanza), weight));
            return;
        };
        let round = match self.segments.back_mut() {
            Some(Segment::Round(r)) => r,
            _ => {
                self.segments.push_back(Segment::Round(Round::new()));
                match self.segments.back_mut() {
                    Some(Segment::Round(r)) => r,
                    _ => unreachable!("a round was just pushed"),
                }
            }
        };
        match round.lanes.iter_mut().find(|(l, _)| *l == lane) {
            Some((_, q)) => q.push_back((stanza, weight)),
            None => round
                .lanes
                .push_back((lane, VecDeque::from([(stanza, weight)]))),
        }
    }

    /// The next stanza to send and its weight (about its size on the wire
    /// in bytes).
    pub(crate) fn pop(&mut self) -> Option<(Stanza, usize)> {
        loop {
            match self.segments.front_mut()? {
                Segment::Barrier(..) => {
                    let Some(Segment::Barrier(s, w)) = self.segments.pop_front() else {
                        unreachable!("the front is a barrier");
                    };
                    self.len -= 1;
                    return Some((*s, w));
                }
                Segment::Round(r) => {
                    let Some((_, q)) = r.lanes.front_mut() else {
                        self.segments.pop_front();
                        continue;
                    };
                    let next = q.pop_front();
                    let lane_empty = q.is_empty();
                    let Some((stanza, w)) = next else {
                        // Lanes are never left empty; drop one if it were.
                        r.lanes.pop_front();
                        continue;
                    };
                    r.turn_left = r.turn_left.saturating_sub(w);
                    if lane_empty || r.turn_left == 0 {
                        // The turn ends: the next lane's begins.
                        if let Some(l) = r.lanes.pop_front().filter(|_| !lane_empty) {
                            r.lanes.push_back(l);
                        }
                        r.turn_left = TURN_BYTES;
                    }
                    self.len -= 1;
                    return Some((stanza, w));
                }
            }
        }
    }

    /// How many stanzas are queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything queued.
    pub(crate) fn clear(&mut self) {
        self.segments.clear();
        self.len = 0;
    }
}

/// About how many bytes `stanza` takes on the wire: its text content and
/// names, plus a fixed allowance per element for markup and attributes. A
/// realtime payload's base64 text is nearly all of it.
pub(crate) fn weight(stanza: &Stanza) -> usize {
    const ENVELOPE: usize = 200;
    match stanza {
        Stanza::Message(m) => {
            ENVELOPE
                + m.thread.as_ref().map_or(0, |t| t.id.len() + 20)
                + m.bodies.values().map(|b| b.len() + 16).sum::<usize>()
                + m.payloads.iter().map(element_weight).sum::<usize>()
        }
        // Small, as this library sends them.
        Stanza::Presence(_) | Stanza::Iq(_) => ENVELOPE * 2,
    }
}

fn element_weight(e: &Element) -> usize {
    const MARKUP: usize = 40;
    MARKUP
        + 2 * e.name().len()
        + e.texts().map(str::len).sum::<usize>()
        + e.children().map(element_weight).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::message::{Message, MessageType, Thread};
    use xmpp_parsers::presence::{Presence, Type as PresenceType};

    /// A message of about `size` bytes on the wire.
    fn sized(to: &str, thread: &str, id: &str, size: usize) -> Stanza {
        let mut s = msg(to, thread, id);
        if let Stanza::Message(m) = &mut s {
            let data = Element::builder("data", "urn:xmpp:webxdc:0")
                .append("A".repeat(size))
                .build();
            m.payloads.push(
                Element::builder("x", "urn:xmpp:webxdc:0")
                    .append(data)
                    .build(),
            );
        }
        s
    }

    fn msg(to: &str, thread: &str, id: &str) -> Stanza {
        let mut m = Message::new(Some(to.parse().unwrap()));
        m.type_ = MessageType::Groupchat;
        m.thread = Some(Thread {
            parent: None,
            id: thread.to_owned(),
        });
        m.id = Some(xmpp_parsers::message::Id(id.to_owned()));
        Stanza::Message(m)
    }

    fn presence(to: &str) -> Stanza {
        let mut p = Presence::new(PresenceType::Unavailable);
        p.to = Some(to.parse().unwrap());
        Stanza::Presence(p)
    }

    fn id(s: &Stanza) -> String {
        match s {
            Stanza::Message(m) => m.id.as_ref().map(|i| i.0.clone()).unwrap_or_default(),
            Stanza::Presence(_) => "presence".into(),
            Stanza::Iq(_) => "iq".into(),
        }
    }

    fn drain(s: &mut Scheduler) -> Vec<String> {
        std::iter::from_fn(|| s.pop())
            .map(|(st, _)| id(&st))
            .collect()
    }

    const BIG: usize = 170_000;

    #[test]
    fn lanes_take_turns_and_keep_their_order() {
        let mut s = Scheduler::default();
        for i in 0..3 {
            s.push(sized("room@muc.example", "bulk", &format!("a{i}"), BIG));
        }
        s.push(sized("room@muc.example", "other", "b0", BIG));
        s.push(sized("room@muc.example", "other", "b1", BIG));
        assert_eq!(s.len(), 5);
        assert_eq!(drain(&mut s), ["a0", "b0", "a1", "b1", "a2"]);
        assert!(s.is_empty());
    }

    #[test]
    fn small_payloads_go_many_per_turn() {
        let mut s = Scheduler::default();
        for i in 0..3 {
            s.push(sized("room@muc.example", "bulk", &format!("a{i}"), BIG));
        }
        for i in 0..5 {
            s.push(sized("room@muc.example", "other", &format!("b{i}"), 32));
        }
        assert_eq!(
            drain(&mut s),
            ["a0", "b0", "b1", "b2", "b3", "b4", "a1", "a2"]
        );
    }

    #[test]
    fn same_thread_in_another_chat_is_another_lane() {
        let mut s = Scheduler::default();
        s.push(sized("one@muc.example", "t", "a0", BIG));
        s.push(sized("one@muc.example", "t", "a1", BIG));
        s.push(sized("two@muc.example", "t", "b0", BIG));
        assert_eq!(drain(&mut s), ["a0", "b0", "a1"]);
    }

    #[test]
    fn presence_keeps_its_place() {
        let mut s = Scheduler::default();
        s.push(sized("room@muc.example", "bulk", "a0", BIG));
        s.push(sized("room@muc.example", "bulk", "a1", BIG));
        s.push(presence("room@muc.example/me"));
        s.push(msg("room@muc.example", "other", "b0"));
        assert_eq!(drain(&mut s), ["a0", "a1", "presence", "b0"]);
    }

    #[test]
    fn a_lane_that_empties_rejoins_at_the_back() {
        let mut s = Scheduler::default();
        s.push(sized("room@muc.example", "a", "a0", BIG));
        s.push(sized("room@muc.example", "b", "b0", BIG));
        assert_eq!(s.pop().map(|(st, _)| id(&st)).as_deref(), Some("a0"));
        s.push(sized("room@muc.example", "a", "a1", BIG));
        s.push(sized("room@muc.example", "b", "b1", BIG));
        assert_eq!(drain(&mut s), ["b0", "a1", "b1"]);
        s.clear();
        assert!(s.is_empty() && s.pop().is_none());
    }

    #[test]
    fn weight_follows_the_payload() {
        assert!(weight(&msg("room@muc.example", "t", "x")) < 400);
        let w = weight(&sized("room@muc.example", "t", "y", BIG));
        assert!((BIG..BIG + 1000).contains(&w), "{w}");
    }
}
