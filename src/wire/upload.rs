//! HTTP file upload (XEP-0363): finding the upload service and asking it
//! for a slot, where an app's `.xdc` is put before it is shared (see
//! [`super::share`]).
//!
//! The service is found with service discovery (XEP-0030): the account's
//! domain lists its items, and the item whose features include
//! [`NS_UPLOAD`] is the upload service. A slot request names the file, its
//! size and type; the answer gives a PUT URL (with the headers the PUT must
//! carry) and the GET URL that others download from.

use jid::Jid;
use xmpp_parsers::disco::{DiscoInfoQuery, DiscoInfoResult, DiscoItemsQuery, DiscoItemsResult};
use xmpp_parsers::http_upload::{SlotRequest, SlotResult};
use xmpp_parsers::iq::Iq;

use super::ErrorCondition;

/// Namespace of XEP-0363 HTTP file upload.
pub const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";

/// An upload service found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadService {
    /// Its JID (`upload.example.org`).
    pub jid: Jid,
    /// The largest file it takes, when it says (`max-file-size`).
    pub max_size: Option<u64>,
}

/// A slot: where to PUT the file, and where it can be fetched afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The URL to PUT the file to.
    pub put_url: String,
    /// Headers the PUT must carry (name, value): only `Authorization`,
    /// `Cookie` and `Expires` are allowed.
    pub put_headers: Vec<(String, String)>,
    /// The URL the file can be downloaded from once it is stored.
    pub get_url: String,
}

/// An answer to one of our iqs: who sent it, and what it says (or the
/// error condition it carries).
pub type Answer<T> = Option<(Option<Jid>, Result<T, ErrorCondition>)>;

/// Asks `domain` for its items (`disco#items`), with iq id `id`.
pub fn items_query(domain: &Jid, id: &str) -> Iq {
    Iq::from_get(
        id,
        DiscoItemsQuery {
            node: None,
            rsm: None,
        },
    )
    .with_to(domain.clone())
}

/// Asks `jid` for its features (`disco#info`), with iq id `id`.
pub fn info_query(jid: &Jid, id: &str) -> Iq {
    Iq::from_get(id, DiscoInfoQuery { node: None }).with_to(jid.clone())
}

/// The slot request for a file, with iq id `id`.
pub fn slot_request(
    service: &Jid,
    id: &str,
    filename: &str,
    size: u64,
    content_type: Option<&str>,
) -> Iq {
    Iq::from_get(
        id,
        SlotRequest {
            filename: filename.to_owned(),
            size,
            content_type: content_type.map(str::to_owned),
        },
    )
    .with_to(service.clone())
}

/// The payload of the answer to iq `id`, or its error: `None` when `iq` is
/// not that answer.
fn answer(iq: &Iq, id: &str) -> Answer<Option<minidom::Element>> {
    match iq {
        Iq::Result {
            id: iq_id,
            from,
            payload,
            ..
        } if iq_id == id => Some((from.clone(), Ok(payload.clone()))),
        Iq::Error {
            id: iq_id, from, ..
        } if iq_id == id => {
            let el = minidom::Element::from(iq.clone());
            let children: Vec<minidom::Element> = el.children().cloned().collect();
            Some((from.clone(), Err(ErrorCondition::of_payloads(&children))))
        }
        _ => None,
    }
}

/// Reads the answer to items query `id`: the items' JIDs.
pub fn read_items(iq: &Iq, id: &str) -> Answer<Vec<Jid>> {
    let (from, payload) = answer(iq, id)?;
    let items = payload.and_then(|p| {
        let p = p.ok_or_else(|| ErrorCondition::Other("empty disco#items answer".into()))?;
        DiscoItemsResult::try_from(p)
            .map(|r| r.items.into_iter().map(|i| i.jid).collect())
            .map_err(|e| ErrorCondition::Other(format!("bad disco#items answer: {e}")))
    });
    Some((from, items))
}

/// Reads the answer to info query `id`: the service, if the entity is an
/// upload service.
pub fn read_info(iq: &Iq, id: &str) -> Answer<Option<UploadService>> {
    let (from, payload) = answer(iq, id)?;
    let service = payload.and_then(|p| {
        let p = p.ok_or_else(|| ErrorCondition::Other("empty disco#info answer".into()))?;
        let info = DiscoInfoResult::try_from(p)
            .map_err(|e| ErrorCondition::Other(format!("bad disco#info answer: {e}")))?;
        if !info.features.contains(NS_UPLOAD) {
            return Ok(None);
        }
        let max_size = info
            .extensions
            .iter()
            .filter(|f| f.form_type() == Some(NS_UPLOAD))
            .flat_map(|f| f.fields.iter())
            .find(|f| f.var.as_deref() == Some("max-file-size"))
            .and_then(|f| f.values.first())
            .and_then(|v| v.trim().parse().ok());
        Ok(from.clone().map(|jid| UploadService { jid, max_size }))
    });
    Some((from, service))
}

/// Reads the answer to slot request `id`.
pub fn read_slot(iq: &Iq, id: &str) -> Answer<Slot> {
    let (from, payload) = answer(iq, id)?;
    let slot = payload.and_then(|p| {
        let p = p.ok_or_else(|| ErrorCondition::Other("empty slot answer".into()))?;
        let slot = SlotResult::try_from(p)
            .map_err(|e| ErrorCondition::Other(format!("bad slot answer: {e}")))?;
        Ok(Slot {
            put_url: slot.put.url,
            put_headers: slot
                .put
                .headers
                .into_iter()
                .map(|h| (h.name.as_str().to_owned(), h.value))
                .collect(),
            get_url: slot.get.url,
        })
    });
    Some((from, slot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minidom::Element;

    fn iq(xml: &str) -> Iq {
        Iq::try_from(xml.parse::<Element>().unwrap()).unwrap()
    }

    #[test]
    fn a_slot_request_and_its_answer() {
        let service: Jid = "upload.example.org".parse().unwrap();
        let el = Element::from(slot_request(
            &service,
            "s1",
            "board.xdc",
            48213,
            Some("application/xdc+zip"),
        ));
        let r = el.get_child("request", NS_UPLOAD).unwrap();
        assert_eq!(
            (r.attr("filename"), r.attr("size"), r.attr("content-type")),
            (
                Some("board.xdc"),
                Some("48213"),
                Some("application/xdc+zip")
            )
        );
        assert_eq!(el.attr("to"), Some("upload.example.org"));
        let answer = iq("<iq xmlns='jabber:client' type='result' id='s1' from='upload.example.org'>\
            <slot xmlns='urn:xmpp:http:upload:0'><put url='https://u.example/p/1'>\
            <header name='Authorization'>Bearer x</header></put><get url='https://u.example/g/1'/></slot></iq>");
        let (from, slot) = read_slot(&answer, "s1").unwrap();
        assert_eq!(from, Some(service));
        assert_eq!(
            slot.unwrap(),
            Slot {
                put_url: "https://u.example/p/1".into(),
                put_headers: vec![("Authorization".into(), "Bearer x".into())],
                get_url: "https://u.example/g/1".into(),
            }
        );
        assert!(read_slot(&answer, "other").is_none());
        let refused = iq("<iq xmlns='jabber:client' type='error' id='s1' from='upload.example.org'>\
            <error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
        assert!(read_slot(&refused, "s1").unwrap().1.is_err());
        let garbage = iq("<iq xmlns='jabber:client' type='result' id='s1' from='upload.example.org'><slot xmlns='urn:xmpp:http:upload:0'/></iq>");
        assert!(read_slot(&garbage, "s1").unwrap().1.is_err());
    }

    #[test]
    fn discovery_answers() {
        let items = iq("<iq xmlns='jabber:client' type='result' id='d1' from='example.org'>\
            <query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.example.org'/>\
            <item jid='upload.example.org'/></query></iq>");
        let (_, list) = read_items(&items, "d1").unwrap();
        assert_eq!(list.unwrap().len(), 2);
        let info = iq("<iq xmlns='jabber:client' type='result' id='d2' from='upload.example.org'>\
            <query xmlns='http://jabber.org/protocol/disco#info'><identity category='store' type='file'/>\
            <feature var='urn:xmpp:http:upload:0'/>\
            <x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field>\
            <field var='max-file-size'><value>10485760</value></field></x></query></iq>");
        let (_, service) = read_info(&info, "d2").unwrap();
        assert_eq!(
            service.unwrap(),
            Some(UploadService {
                jid: "upload.example.org".parse().unwrap(),
                max_size: Some(10485760)
            })
        );
        let muc = iq("<iq xmlns='jabber:client' type='result' id='d3' from='conference.example.org'>\
            <query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text'/>\
            <feature var='http://jabber.org/protocol/muc'/></query></iq>");
        assert_eq!(read_info(&muc, "d3").unwrap().1, Ok(None));
    }
}
