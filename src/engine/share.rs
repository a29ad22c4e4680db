//! Apps shared into a chat, and the HTTP upload (XEP-0363) that puts their
//! `.xdc` on a server first.
//!
//! Sharing is one message ([`wire::share`]); the engine sends it, and reports
//! the shares it receives ([`EngineEvent::AppShared`]) or reads from a
//! room's archive ([`EngineEvent::ArchivedApp`]). Finding the upload service
//! and asking it for a slot are iq exchanges the engine tracks by an
//! [`UploadQuery`], each ending in one event.

use jid::Jid;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::stanza::Stanza;

use super::{Chat, Engine, EngineEvent, RoomState};
use crate::error::{UpdateError, UploadError};
use crate::wire::share::{self, SharedApp};
use crate::wire::upload;
use crate::wire::{ChatKind, ErrorCondition};

/// Most upload exchanges in flight at once.
const MAX_UPLOADS: usize = 16;

/// Names one upload exchange (see [`Engine::find_upload_service`] and
/// [`Engine::request_upload_slot`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadQuery(pub(crate) String);

pub(super) enum PendingUpload {
    /// Waiting for the domain's items.
    Items {
        query: UploadQuery,
        iq_id: String,
        domain: Jid,
    },
    /// Waiting for the items' features: (iq id, item) still unanswered.
    Info {
        query: UploadQuery,
        waiting: Vec<(String, Jid)>,
    },
    /// Waiting for a slot.
    Slot {
        query: UploadQuery,
        iq_id: String,
        service: Jid,
    },
}

impl Engine {
    /// Shares `app` into `chat`: Cheogram's file message with the app's
    /// thread (see [`wire::share`](crate::wire::share)). The room reflects it
    /// to us too, as an [`EngineEvent::AppShared`].
    pub fn share_app(&mut self, chat: &Chat, app: &SharedApp) -> Result<(), UpdateError> {
        if !self.online {
            return Err(UpdateError::Disconnected);
        }
        if let Chat::Group(room) = chat {
            if self.room_state(room) != Some(RoomState::Joined) {
                return Err(UpdateError::RoomNotJoined(room.clone()));
            }
        }
        let (kind, to) = match chat {
            Chat::Group(j) => (ChatKind::Group, j),
            Chat::Direct(j) => (ChatKind::Direct, j),
        };
        let id = (self.stanza_ids)();
        let msg = share::encode_share(to, kind, app, &id).map_err(|e| match e {
            e @ (crate::wire::WireError::InvalidThread
            | crate::wire::WireError::ThreadTooLong { .. }) => UpdateError::thread(e),
            other => UpdateError::NotJson(other.to_string()),
        })?;
        self.transmit.push_back(Stanza::Message(msg));
        Ok(())
    }

    /// Looks for our server's upload service: asks the domain for its items
    /// and each item for its features. Ends with one
    /// [`EngineEvent::UploadService`].
    pub fn find_upload_service(&mut self) -> Result<UploadQuery, UploadError> {
        let domain = self.upload_precheck()?;
        let query = UploadQuery((self.stanza_ids)());
        let iq_id = (self.stanza_ids)();
        self.transmit
            .push_back(Stanza::Iq(upload::items_query(&domain, &iq_id)));
        self.uploads.push(PendingUpload::Items {
            query: query.clone(),
            iq_id,
            domain,
        });
        Ok(query)
    }

    /// Asks `service` for a slot for a file. Ends with one
    /// [`EngineEvent::UploadSlot`].
    pub fn request_upload_slot(
        &mut self,
        service: &Jid,
        filename: &str,
        size: u64,
        content_type: Option<&str>,
    ) -> Result<UploadQuery, UploadError> {
        self.upload_precheck()?;
        if filename.trim().is_empty() {
            return Err(UploadError::BadFile("the file needs a name".into()));
        }
        let query = UploadQuery((self.stanza_ids)());
        let iq_id = (self.stanza_ids)();
        self.transmit.push_back(Stanza::Iq(upload::slot_request(
            service,
            &iq_id,
            filename,
            size,
            content_type,
        )));
        self.uploads.push(PendingUpload::Slot {
            query: query.clone(),
            iq_id,
            service: service.clone(),
        });
        Ok(query)
    }

    fn upload_precheck(&self) -> Result<Jid, UploadError> {
        let Some(own) = self.own.as_ref().filter(|_| self.online) else {
            return Err(UploadError::Disconnected);
        };
        if self.uploads.len() >= MAX_UPLOADS {
            return Err(UploadError::Busy);
        }
        Ok(Jid::from(own.domain().to_owned()))
    }

    /// An iq answering one of our upload exchanges; true when it was one.
    pub(super) fn handle_upload_iq(&mut self, iq: &Iq) -> bool {
        for i in 0..self.uploads.len() {
            match &mut self.uploads[i] {
                PendingUpload::Items { iq_id, domain, .. } => {
                    let Some((from, items)) = upload::read_items(iq, iq_id) else {
                        continue;
                    };
                    if from.as_ref() != Some(domain) {
                        continue;
                    }
                    let PendingUpload::Items { query, .. } = self.uploads.remove(i) else {
                        return true;
                    };
                    match items {
                        Err(c) => self.push_event(EngineEvent::UploadService {
                            query,
                            service: Err(c),
                        }),
                        Ok(items) if items.is_empty() => {
                            self.push_event(EngineEvent::UploadService {
                                query,
                                service: Ok(None),
                            })
                        }
                        Ok(items) => {
                            let waiting = items
                                .into_iter()
                                .take(32)
                                .map(|jid| {
                                    let id = (self.stanza_ids)();
                                    self.transmit
                                        .push_back(Stanza::Iq(upload::info_query(&jid, &id)));
                                    (id, jid)
                                })
                                .collect();
                            self.uploads.push(PendingUpload::Info { query, waiting });
                        }
                    }
                    return true;
                }
                PendingUpload::Info { waiting, .. } => {
                    let Some(pos) = waiting.iter().position(|(id, jid)| {
                        matches!(upload::read_info(iq, id), Some((Some(from), _)) if &from == jid)
                    }) else {
                        continue;
                    };
                    let (id, _) = waiting.remove(pos);
                    let found = upload::read_info(iq, &id).and_then(|(_, r)| r.ok().flatten());
                    let done = found.is_some() || waiting.is_empty();
                    if done {
                        if let PendingUpload::Info { query, .. } = self.uploads.remove(i) {
                            self.push_event(EngineEvent::UploadService {
                                query,
                                service: Ok(found),
                            });
                        }
                    }
                    return true;
                }
                PendingUpload::Slot { iq_id, service, .. } => {
                    let Some((from, slot)) = upload::read_slot(iq, iq_id) else {
                        continue;
                    };
                    if from.as_ref() != Some(service) {
                        continue;
                    }
                    if let PendingUpload::Slot { query, .. } = self.uploads.remove(i) {
                        self.push_event(EngineEvent::UploadSlot { query, slot });
                    }
                    return true;
                }
            }
        }
        false
    }

    /// Ends every upload exchange: the connection dropped.
    pub(super) fn end_all_uploads(&mut self) {
        for u in std::mem::take(&mut self.uploads) {
            let gone = || ErrorCondition::Other("disconnected".into());
            match u {
                PendingUpload::Items { query, .. } | PendingUpload::Info { query, .. } => self
                    .push_event(EngineEvent::UploadService {
                        query,
                        service: Err(gone()),
                    }),
                PendingUpload::Slot { query, .. } => self.push_event(EngineEvent::UploadSlot {
                    query,
                    slot: Err(gone()),
                }),
            }
        }
    }
}
