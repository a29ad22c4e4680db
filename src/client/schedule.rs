//! The order in which queued stanzas go to the stream.
//!
//! The engine queues stanzas in the order they were made; sent in that
//! order, a small payload of one channel waits behind every chunk another
//! channel queued before it (apps send files as 126000-byte payloads back
//! to back). The [`Scheduler`] takes the engine's stanzas into one FIFO
//! lane per channel (destination and `<thread>`) and hands them out round
//! robin: a channel's own stanzas keep their order (the contract's
//! per-sender order is per channel), and a stanza of another channel waits
//! behind at most one stanza of each busy lane.
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
#[derive(Debug, Default)]
struct Round {
    /// Lanes in turn order; a lane that gave a stanza goes to the back.
    lanes: VecDeque<(Lane, VecDeque<(Stanza, usize)>)>,
}

/// Either a group of lanes or one stanza that keeps its place.
#[derive(Debug)]
enum Segment {
    Round(Round),
    Barrier(Stanza, usize),
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
            self.segments.push_back(Segment::Barrier(stanza, weight));
            return;
        };
        let round = match self.segments.back_mut() {
            Some(Segment::Round(r)) => r,
            _ => {
                self.segments.push_back(Segment::Round(Round::default()));
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
                    return Some((s, w));
                }
                Segment::Round(r) => {
                    let Some((lane, mut q)) = r.lanes.pop_front() else {
                        self.segments.pop_front();
                        continue;
                    };
                    let next = q.pop_front();
                    if !q.is_empty() {
                        r.lanes.push_back((lane, q));
                    }
                    if let Some(next) = next {
                        self.len -= 1;
                        return Some(next);
                    }
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

    #[test]
    fn lanes_take_turns_and_keep_their_order() {
        let mut s = Scheduler::default();
        for i in 0..3 {
            s.push(msg("room@muc.example", "bulk", &format!("a{i}")));
        }
        s.push(msg("room@muc.example", "other", "b0"));
        s.push(msg("room@muc.example", "other", "b1"));
        assert_eq!(s.len(), 5);
        assert_eq!(drain(&mut s), ["a0", "b0", "a1", "b1", "a2"]);
        assert!(s.is_empty());
    }

    #[test]
    fn same_thread_in_another_chat_is_another_lane() {
        let mut s = Scheduler::default();
        s.push(msg("one@muc.example", "t", "a0"));
        s.push(msg("one@muc.example", "t", "a1"));
        s.push(msg("two@muc.example", "t", "b0"));
        assert_eq!(drain(&mut s), ["a0", "b0", "a1"]);
    }

    #[test]
    fn presence_keeps_its_place() {
        let mut s = Scheduler::default();
        s.push(msg("room@muc.example", "bulk", "a0"));
        s.push(msg("room@muc.example", "bulk", "a1"));
        s.push(presence("room@muc.example/me"));
        s.push(msg("room@muc.example", "other", "b0"));
        assert_eq!(drain(&mut s), ["a0", "a1", "presence", "b0"]);
    }

    #[test]
    fn a_lane_that_empties_rejoins_at_the_back() {
        let mut s = Scheduler::default();
        s.push(msg("room@muc.example", "a", "a0"));
        s.push(msg("room@muc.example", "b", "b0"));
        assert_eq!(s.pop().map(|(st, _)| id(&st)).as_deref(), Some("a0"));
        s.push(msg("room@muc.example", "a", "a1"));
        s.push(msg("room@muc.example", "b", "b1"));
        assert_eq!(drain(&mut s), ["b0", "a1", "b1"]);
        s.clear();
        assert!(s.is_empty() && s.pop().is_none());
    }

    #[test]
    fn weight_follows_the_payload() {
        let small = msg("room@muc.example", "t", "x");
        let mut big = msg("room@muc.example", "t", "y");
        if let Stanza::Message(m) = &mut big {
            let data = Element::builder("data", "urn:xmpp:webxdc:0")
                .append("A".repeat(170_000))
                .build();
            m.payloads.push(
                Element::builder("x", "urn:xmpp:webxdc:0")
                    .append(data)
                    .build(),
            );
        }
        assert!(weight(&small) < 400);
        let w = weight(&big);
        assert!((170_000..171_000).contains(&w), "{w}");
    }
}
