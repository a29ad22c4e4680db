//! The in-memory reference backend: the library's sans-IO [`Engine`], one
//! per device, wired to a simulated MUC service.
//!
//! The simulated room does what a real MUC does, and nothing more: it
//! answers a join presence with the occupant's self-presence (status 110),
//! and delivers every groupchat message to every occupant — the sender
//! included, as the reflection real rooms send — stamped
//! `from='room@service/sender-nick'`. The engines therefore do all the
//! contract work themselves (echo filtering, isolation, size limit, queues),
//! exactly as inside the XMPP client.
//!
//! Delivery is synchronous: a `send` returns after every engine has handled
//! the message, so runs are deterministic, fast, and need no network.
//! A restart takes every engine offline, makes the room forget its
//! occupants, and brings the engines back with new sessions, so they join
//! again and are answered again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use webxdc_realtime_xmpp::engine::{ChannelId, Chat, Engine, EngineConfig};
use webxdc_realtime_xmpp::jid::{BareJid, FullJid, Jid};
use webxdc_realtime_xmpp::minidom::Element;
use webxdc_realtime_xmpp::Inbox;
use xmpp_parsers::message::MessageType;
use xmpp_parsers::presence::Type as PresenceType;
use xmpp_parsers::stanza::Stanza;

use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};

/// The XMPP domain of the simulated accounts.
const DOMAIN: &str = "memory.example";
/// The simulated MUC service.
const MUC_DOMAIN: &str = "muc.memory.example";

/// One device: an engine with its own session JID.
struct Device {
    engine: Engine,
    jid: FullJid,
}

/// Every engine plus the simulated rooms, behind one lock. The lock is
/// only held for synchronous engine calls, never across an await. (A
/// `parking_lot` lock: it does not poison, and every mutation completes
/// inside one synchronous call, so a case that panicked while holding it
/// leaves no half-made state worth refusing.)
#[derive(Default)]
struct Net {
    devices: Vec<Device>,
    /// Occupants of each room: (device index, nick).
    rooms: HashMap<BareJid, Vec<(usize, String)>>,
}

impl Net {
    /// Routes what the engines want to send until none has anything left.
    fn pump(&mut self) {
        loop {
            let mut out = Vec::new();
            for (i, d) in self.devices.iter_mut().enumerate() {
                while let Some(s) = d.engine.poll_transmit_stanza() {
                    out.push((i, s));
                }
                // Room events are not needed: the engine tracks room state.
                while d.engine.poll_event().is_some() {}
            }
            if out.is_empty() {
                return;
            }
            for (i, s) in out {
                self.route(i, s);
            }
        }
    }

    /// What the MUC service does with one stanza from device `from`.
    fn route(&mut self, from: usize, stanza: Stanza) {
        match stanza {
            Stanza::Presence(p) => {
                let Some(to) = p.to.clone().and_then(|j| j.try_into_full().ok()) else {
                    return;
                };
                let room = to.to_bare();
                let nick = to.resource().as_str().to_owned();
                let occupants = self.rooms.entry(room.clone()).or_default();
                occupants.retain(|(d, _)| *d != from);
                let available = p.type_ != PresenceType::Unavailable;
                if available {
                    occupants.push((from, nick.clone()));
                }
                let own = self.devices[from].jid.clone();
                let kind = if available { "" } else { " type='unavailable'" };
                // Built from our own JIDs, which are always valid XML
                // attribute values: this cannot fail.
                let xml = format!(
                    "<presence xmlns='jabber:client' from='{room}/{nick}' to='{own}'{kind}>\
                       <x xmlns='http://jabber.org/protocol/muc#user'>\
                         <item affiliation='member' role='participant'/>\
                         <status code='110'/>\
                       </x>\
                     </presence>"
                );
                if let Ok(el) = xml.parse::<Element>() {
                    self.devices[from].engine.handle_element(&el);
                }
            }
            Stanza::Message(mut m) if m.type_ == MessageType::Groupchat => {
                let Some(room) = m.to.as_ref().map(|j| j.to_bare()) else {
                    return;
                };
                let Some(occupants) = self.rooms.get(&room) else {
                    return;
                };
                // Only occupants may speak (a real room bounces the rest).
                let Some((_, nick)) = occupants.iter().find(|(d, _)| *d == from) else {
                    return;
                };
                let Ok(sender) = room.with_resource_str(nick) else {
                    return;
                };
                m.from = Some(Jid::from(sender));
                let targets: Vec<usize> = occupants.iter().map(|(d, _)| *d).collect();
                // Every occupant gets it, the sender included: the room's
                // reflection, which the sender's engine must filter.
                for d in targets {
                    let mut copy = m.clone();
                    copy.to = Some(Jid::from(self.devices[d].jid.clone()));
                    self.devices[d].engine.handle_element(&Element::from(copy));
                }
            }
            // 1:1 messages and IQs are not used by this backend.
            _ => {}
        }
    }
}

struct ChatState {
    room: BareJid,
    /// Device index of each member number.
    members: Vec<usize>,
}

/// A chat of the memory backend (an index into the harness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryChat(usize);

/// The in-memory backend. See the [module docs](self).
pub struct MemoryHarness {
    net: Arc<Mutex<Net>>,
    chats: Vec<ChatState>,
    /// The participant (account) of each device.
    owner: Vec<usize>,
    participants: usize,
    restarts: u32,
}

impl Default for MemoryHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryHarness {
    /// A new, empty simulated network.
    pub fn new() -> Self {
        MemoryHarness {
            net: Arc::new(Mutex::new(Net::default())),
            chats: Vec::new(),
            owner: Vec::new(),
            participants: 0,
            restarts: 0,
        }
    }

    /// A new device of participant `p`, online.
    fn new_device(&mut self, p: usize) -> Result<usize, HarnessError> {
        let mut net = self.net.lock();
        let index = net.devices.len();
        let jid: FullJid = format!("p{p}@{DOMAIN}/d{index}-s{}", self.restarts)
            .parse()
            .map_err(HarnessError::new)?;
        let mut engine = Engine::new(EngineConfig::default());
        engine.set_online(jid.clone(), false);
        net.devices.push(Device { engine, jid });
        self.owner.push(p);
        Ok(index)
    }

    /// Puts device `d` into `room` (one nick per device, as the engine
    /// requires) and lets the room answer.
    fn enter(&self, room: &BareJid, d: usize) {
        let mut net = self.net.lock();
        let nick = format!("p{}-d{d}", self.owner[d]);
        net.devices[d].engine.join_room(room.clone(), &nick);
        net.pump();
    }

    fn chat(&self, chat: &MemoryChat) -> Result<&ChatState, HarnessError> {
        self.chats
            .get(chat.0)
            .ok_or_else(|| HarnessError(format!("unknown chat {}", chat.0)))
    }

    fn new_room(&mut self, members: Vec<usize>) -> Result<MemoryChat, HarnessError> {
        let room: BareJid = format!("chat{}@{MUC_DOMAIN}", self.chats.len())
            .parse()
            .map_err(HarnessError::new)?;
        for &d in &members {
            self.enter(&room, d);
        }
        self.chats.push(ChatState { room, members });
        Ok(MemoryChat(self.chats.len() - 1))
    }
}

impl Harness for MemoryHarness {
    type Chat = MemoryChat;
    type Channel = MemoryChannel;

    fn name(&self) -> String {
        "memory".to_owned()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn new_chat(&mut self, members: usize) -> Result<MemoryChat, HarnessError> {
        let mut devices = Vec::with_capacity(members);
        for _ in 0..members {
            let p = self.participants;
            self.participants += 1;
            devices.push(self.new_device(p)?);
        }
        self.new_room(devices)
    }

    async fn other_chat(&mut self, chat: &MemoryChat) -> Result<MemoryChat, HarnessError> {
        let members = self.chat(chat)?.members.clone();
        self.new_room(members)
    }

    async fn join(
        &mut self,
        chat: &MemoryChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<MemoryChannel, JoinFailure>, HarnessError> {
        let state = self.chat(chat)?;
        let device = crate::device_of(&state.members, member, chat.0)?;
        let room = state.room.clone();
        let joined = self
            .net
            .lock()
            .devices
            .get_mut(device)
            .map(|d| d.engine.join(Chat::Group(room), instance));
        Ok(match joined {
            None => return Err(HarnessError(format!("no device {device}"))),
            Some(Ok((id, inbox))) => Ok(MemoryChannel {
                net: self.net.clone(),
                device,
                id,
                inbox,
            }),
            Some(Err(e)) => Err(crate::join_failure(e)),
        })
    }

    async fn add_device(
        &mut self,
        chat: &MemoryChat,
        member: Member,
    ) -> Result<Member, HarnessError> {
        let state = self.chat(chat)?;
        let device = crate::device_of(&state.members, member, chat.0)?;
        let room = state.room.clone();
        let p = self.owner[device];
        let d = self.new_device(p)?;
        self.enter(&room, d);
        let members = &mut self.chats[chat.0].members;
        members.push(d);
        Ok(members.len() - 1)
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        self.restarts += 1;
        let mut net = self.net.lock();
        for d in &mut net.devices {
            d.engine.set_offline();
        }
        // The service forgets every occupant, as a restarted MUC does.
        net.rooms.clear();
        for d in &mut net.devices {
            let jid = d.jid.clone();
            // A new session (not resumed): the engine joins its rooms again.
            d.engine.set_online(jid, false);
        }
        net.pump();
        Ok(())
    }
}

/// A channel of the memory backend.
pub struct MemoryChannel {
    net: Arc<Mutex<Net>>,
    device: usize,
    id: ChannelId,
    inbox: Inbox,
}

impl Channel for MemoryChannel {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        let mut net = self.net.lock();
        let Some(d) = net.devices.get_mut(self.device) else {
            return Err(SendFailure::Other(format!("no device {}", self.device)));
        };
        let sent = d.engine.send(self.id, data);
        net.pump();
        sent.map_err(crate::send_failure)
    }

    async fn recv(&mut self, timeout: Duration) -> Received {
        crate::recv_delivery(&mut self.inbox, timeout).await
    }

    async fn leave(&mut self) {
        let mut net = self.net.lock();
        if let Some(d) = net.devices.get_mut(self.device) {
            d.engine.leave(self.id);
        }
    }
}

impl Drop for MemoryChannel {
    /// Dropping leaves, as the library's channel does.
    fn drop(&mut self) {
        let mut net = self.net.lock();
        if let Some(d) = net.devices.get_mut(self.device) {
            d.engine.leave(self.id);
        }
    }
}
