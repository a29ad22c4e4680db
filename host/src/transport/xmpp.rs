//! The [`Transport`] over XMPP: the library's client in one room.
//!
//! Realtime is the library's [`Channel`] (Cheogram's `<data/>` frames,
//! unchanged); status updates are the library's XEP-0491 updates
//! ([`GroupChat::send_update`], [`GroupChat::updates`]): stored by the
//! room's archive, read back from it by a host that starts later.

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use webxdc_realtime_xmpp::{
    Channel, Client, Delivery, GroupChat, JoinError, SendError, StatusUpdate, UpdateError,
    UpdateItem,
};

use super::{Realtime, RealtimeEvent, Transport, TransportError, Update, UpdateEvent, UpdateFeed};

/// One XMPP account in one room.
#[derive(Debug, Clone)]
pub struct XmppTransport {
    client: Client,
    chat: GroupChat,
}

impl XmppTransport {
    /// The transport of `client` in the room `chat` (entered with
    /// [`Client::group`]).
    pub fn new(client: Client, chat: GroupChat) -> Self {
        XmppTransport { client, chat }
    }
}

/// The library's channel behind the host's trait.
struct XmppChannel(Channel);

impl Transport for XmppTransport {
    /// As Cheogram derives it. In a room that hides real JIDs (the usual
    /// kind): the room's occupant id for us (XEP-0421) if it gives one,
    /// else `xmpp:` and our occupant JID (`room@service/nick`); in a room
    /// that shows real JIDs to everyone: `xmpp:` and the account's bare JID.
    fn self_addr(&self) -> String {
        match self.chat.self_occupant() {
            Some(me) if !me.non_anonymous => match me.occupant_id {
                Some(id) => id,
                None => {
                    let occupant = format!("{}/{}", self.chat.room(), me.nick);
                    format!("xmpp:{}", uri_escape(&occupant))
                }
            },
            _ => format!(
                "xmpp:{}",
                uri_escape(&self.client.jid().to_bare().to_string())
            ),
        }
    }

    /// Our nick in the room (the room's, if it changed the one we asked
    /// for), as Cheogram gives it.
    fn self_name(&self) -> String {
        match self.chat.self_occupant() {
            Some(me) => me.nick,
            None => self.client.nick().to_owned(),
        }
    }

    fn join(&self, instance: &str) -> Result<Box<dyn Realtime>, TransportError> {
        match self.chat.join_realtime_channel(instance) {
            Ok(ch) => Ok(Box::new(XmppChannel(ch))),
            Err(JoinError::AlreadyJoined) => Err(TransportError::AlreadyJoined),
            Err(e) => Err(TransportError::Unavailable(e.to_string())),
        }
    }

    fn send_update<'a>(
        &'a self,
        instance: &'a str,
        update: &'a Update,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        async move {
            let status = StatusUpdate {
                payload: update.payload.clone(),
                info: update.info.clone(),
                document: update.document.clone(),
                summary: update.summary.clone(),
            };
            self.chat
                .send_update(instance, &status)
                .await
                .map_err(|e| match e {
                    UpdateError::TooLarge { .. }
                    | UpdateError::NotJson(_)
                    | UpdateError::InvalidThread => TransportError::BadUpdate(e.to_string()),
                    other => TransportError::Unavailable(other.to_string()),
                })
        }
        .boxed()
    }

    fn updates<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<UpdateFeed, TransportError>> {
        async move {
            let feed = self
                .chat
                .updates(instance)
                .await
                .map_err(|e| TransportError::Unavailable(e.to_string()))?;
            let feed = feed.filter_map(|item| async move {
                match item {
                    UpdateItem::Update { frame, .. } => Some(UpdateEvent::Update(Update {
                        payload: frame.update.payload,
                        info: frame.update.info,
                        document: frame.update.document,
                        summary: frame.update.summary,
                    })),
                    UpdateItem::ArchiveEnd(outcome) => {
                        let complete =
                            matches!(outcome, webxdc_realtime_xmpp::ArchiveOutcome::Complete);
                        Some(UpdateEvent::PastEnd {
                            complete,
                            reason: (!complete).then(|| format!("room archive: {outcome:?}")),
                        })
                    }
                    UpdateItem::Missed { count } => Some(UpdateEvent::Missed(count)),
                    _ => None,
                }
            });
            Ok(Box::pin(feed) as UpdateFeed)
        }
        .boxed()
    }
}

impl Realtime for XmppChannel {
    fn send<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>> {
        async move {
            self.0.send(data).await.map_err(|e| match e {
                SendError::TooLarge { size } => TransportError::TooLarge { size },
                SendError::Left => TransportError::Left,
                other => TransportError::Unavailable(other.to_string()),
            })
        }
        .boxed()
    }

    fn recv(&mut self) -> BoxFuture<'_, Option<RealtimeEvent>> {
        async move {
            loop {
                return match self.0.recv().await? {
                    Delivery::Payload(p) => Some(RealtimeEvent::Data(p.data)),
                    Delivery::Lagged { dropped } => Some(RealtimeEvent::Lagged(dropped)),
                    Delivery::Connection(ev) => Some(RealtimeEvent::Notice(format!("{ev:?}"))),
                    Delivery::Removed(reason) => Some(RealtimeEvent::Notice(format!(
                        "removed from the room: {reason:?}"
                    ))),
                    #[allow(unreachable_patterns)]
                    _ => continue,
                };
            }
        }
        .boxed()
    }

    fn leave(&mut self) {
        self.0.leave();
    }
}

/// Escapes `text` for an `xmpp:` URI as Cheogram does (Android's
/// `Uri.encode` with `@/+` allowed): letters, digits and `-_.!~*'()@/+`
/// stay, every other byte of the UTF-8 becomes `%XX`.
fn uri_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()@/+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri_escape;

    #[test]
    fn addresses_are_escaped_as_cheogram_escapes_them() {
        assert_eq!(uri_escape("alice@example.org"), "alice@example.org");
        assert_eq!(
            uri_escape("room@muc.example/Zoë & co"),
            "room@muc.example/Zo%C3%AB%20%26%20co"
        );
        assert_eq!(uri_escape("a+b:c?d#e"), "a+b%3Ac%3Fd%23e");
    }
}
