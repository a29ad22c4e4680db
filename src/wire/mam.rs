//! Reading a room's archive (XEP-0313 message archive management, paged
//! with XEP-0059 result set management).
//!
//! Status updates are stored by the room's archive; a member that enters
//! later, or restarts, reads them back from it. A query is an `<iq/>` to
//! the room; the archive answers with one `<message/>` per archived
//! stanza (a `<result/>` wrapping the original message) and then an
//! `<iq type='result'/>` holding `<fin/>` with the last id of the page.

use jid::{BareJid, Jid};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::mam::{Fin, Query, QueryId, Result_};
use xmpp_parsers::message::Message;
use xmpp_parsers::rsm::SetQuery;

use super::ErrorCondition;

/// Archived messages asked for per page.
pub const PAGE_SIZE: usize = 100;

/// The query for the page of `room`'s archive after `after` (from the
/// start when `None`). `id` is both the iq id and the query id, which the
/// result messages carry back.
pub fn query(room: &BareJid, id: &str, after: Option<&str>) -> Iq {
    let q = Query {
        queryid: Some(QueryId(id.to_owned())),
        node: None,
        form: None,
        set: Some(SetQuery {
            max: Some(PAGE_SIZE),
            after: after.map(str::to_owned),
            before: None,
            index: None,
        }),
        flip_page: false,
    };
    Iq::from_set(id, q).with_to(Jid::from(room.clone()))
}

/// One archived message, from a result message of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedMessage {
    /// The archive that sent it (the room).
    pub archive: BareJid,
    /// The query it answers.
    pub query_id: String,
    /// Its id in the archive.
    pub archive_id: String,
    /// The message as the room archived it.
    pub message: Message,
}

/// Reads a result message of an archive query; `None` when `m` is not one.
pub fn read_result(m: &Message) -> Option<ArchivedMessage> {
    let result = m
        .payloads
        .iter()
        .find(|p| p.is("result", xmpp_parsers::ns::MAM))?;
    let result = Result_::try_from(result.clone()).ok()?;
    Some(ArchivedMessage {
        archive: m.from.as_ref().map(Jid::to_bare)?,
        query_id: result.queryid?.0,
        archive_id: result.id,
        message: result.forwarded.message,
    })
}

/// How a query's page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageEnd {
    /// The archive has nothing after this page.
    Complete,
    /// More follows; ask for the page after `last`.
    More {
        /// The archive id of the last message of this page.
        last: String,
    },
    /// The archive refused the query (no archive, not allowed, …).
    Failed(ErrorCondition),
}

/// Reads the answer to query `id`: `None` when `iq` is not that answer.
pub fn read_end(iq: &Iq, id: &str) -> Option<(Option<BareJid>, PageEnd)> {
    match iq {
        Iq::Result {
            id: iq_id,
            from,
            payload,
            ..
        } if iq_id == id => {
            let from = from.as_ref().map(Jid::to_bare);
            let fin = payload.as_ref().and_then(|p| Fin::try_from(p.clone()).ok());
            let end = match fin {
                Some(fin) if !fin.complete => match fin.set.last {
                    Some(last) => PageEnd::More { last },
                    None => PageEnd::Complete,
                },
                Some(_) => PageEnd::Complete,
                None => PageEnd::Failed(ErrorCondition::Other("no <fin/> in the answer".into())),
            };
            Some((from, end))
        }
        Iq::Error {
            id: iq_id, from, ..
        } if iq_id == id => {
            // Rare: read the condition from the element form.
            let el = minidom::Element::from(iq.clone());
            let children: Vec<minidom::Element> = el.children().cloned().collect();
            Some((
                from.as_ref().map(Jid::to_bare),
                PageEnd::Failed(ErrorCondition::of_payloads(&children)),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minidom::Element;

    #[test]
    fn a_query_pages_from_the_start_or_after_an_id() {
        let room = BareJid::new("r@muc.example").unwrap();
        let el = Element::from(query(&room, "q1", Some("last-7")));
        assert_eq!(el.attr("type"), Some("set"));
        assert_eq!(el.attr("to"), Some("r@muc.example"));
        let q = el.get_child("query", "urn:xmpp:mam:2").unwrap();
        assert_eq!(q.attr("queryid"), Some("q1"));
        let set = q
            .get_child("set", "http://jabber.org/protocol/rsm")
            .unwrap();
        assert_eq!(
            set.get_child("after", "http://jabber.org/protocol/rsm")
                .unwrap()
                .text(),
            "last-7"
        );
    }

    #[test]
    fn results_and_ends_are_read() {
        let m: Element = "<message xmlns='jabber:client' from='r@muc.example' to='me@example/x'>\
            <result xmlns='urn:xmpp:mam:2' queryid='q1' id='a1'>\
            <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>\
            <message xmlns='jabber:client' from='r@muc.example/bob' type='groupchat'><body>hi</body></message>\
            </forwarded></result></message>"
            .parse()
            .unwrap();
        let r = read_result(&Message::try_from(m).unwrap()).unwrap();
        assert_eq!((r.query_id.as_str(), r.archive_id.as_str()), ("q1", "a1"));
        assert_eq!(r.archive.as_str(), "r@muc.example");
        assert_eq!(
            r.message.bodies.values().next().map(String::as_str),
            Some("hi")
        );

        let fin = |xml: &str| {
            let el: Element = xml.parse().unwrap();
            read_end(&Iq::try_from(el).unwrap(), "q1").map(|(_, end)| end)
        };
        assert_eq!(
            fin("<iq xmlns='jabber:client' type='result' id='q1' from='r@muc.example'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a1</first><last>a9</last></set></fin></iq>"),
            Some(PageEnd::More { last: "a9".into() })
        );
        assert_eq!(
            fin("<iq xmlns='jabber:client' type='result' id='q1' from='r@muc.example'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'/></fin></iq>"),
            Some(PageEnd::Complete)
        );
        assert_eq!(
            fin("<iq xmlns='jabber:client' type='error' id='q1' from='r@muc.example'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"),
            Some(PageEnd::Failed(ErrorCondition::Other("feature-not-implemented".into())))
        );
        assert_eq!(
            fin("<iq xmlns='jabber:client' type='result' id='other' from='r@muc.example'/>"),
            None
        );
    }
}
