//! The ping/pong responder shared by the `bot` and `demo` examples.

use std::collections::HashSet;

use futures::StreamExt;
use tokio::sync::watch;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Channel, Chat, Client, ClientEvent, Delivery, EngineEvent};

/// Most app instances the bot takes part in, unless told otherwise. An
/// occupant can invent thread ids at will; without a cap each one would
/// cost the bot a channel and a task for as long as it runs. 64 is far
/// more than the apps a room really runs at once.
pub const DEFAULT_MAX_CHANNELS: usize = 64;

/// How many refused instances the bot remembers, so that each is logged
/// once rather than once per frame (an app in a busy room sends many). When
/// full the memory starts afresh: bounded, and at worst an instance is
/// logged again.
const REFUSED_MEMORY: usize = 1024;

/// How the bot limits itself.
#[derive(Debug, Clone)]
pub struct BotOptions {
    /// Most app instances (channels) it joins. At the cap it refuses new
    /// instances, and logs each refusal at warn with the room and thread,
    /// rather than evicting the idlest: eviction would hand the bot to
    /// whoever invents threads fastest (each invented one would push out a
    /// real user's channel), while refusal keeps every instance it already
    /// serves working and bounds the cost of the attack.
    pub max_channels: usize,
}

impl Default for BotOptions {
    fn default() -> Self {
        BotOptions {
            max_channels: DEFAULT_MAX_CHANNELS,
        }
    }
}

/// What the bot did so far, for its tests and its operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BotCounts {
    /// Rooms it is in.
    pub rooms: usize,
    /// App instances it joined (never more than the cap).
    pub joined: usize,
    /// App instances it refused at the cap, each counted (and logged) once
    /// while it is remembered (see `REFUSED_MEMORY`).
    pub refused: u64,
    /// Client events it missed by falling behind (instances among them
    /// were neither joined nor refused).
    pub missed: u64,
}

/// [`serve_with`] with the default options, counts not watched.
// The demo calls this; the bot, which takes options, does not.
#[allow(dead_code)]
pub async fn serve(
    client: Client,
    rooms: Vec<BareJid>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with(
        client,
        rooms,
        BotOptions::default(),
        watch::channel(BotCounts::default()).0,
    )
    .await
}

/// Enters `rooms` and takes part in every realtime channel it sees there
/// (and in 1:1 chats), up to `options.max_channels`: prints what arrives,
/// answers `ping…` with `pong…` (same suffix, so the pinger can match the
/// answer). Publishes what it did on `counts`. Runs until the client is
/// shut down; fails only if a room cannot be entered at the start.
pub async fn serve_with(
    client: Client,
    rooms: Vec<BareJid>,
    options: BotOptions,
    counts: watch::Sender<BotCounts>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Subscribe before entering the rooms so that no event is missed.
    let mut events = client.events();
    for room in rooms {
        client.group(room.clone()).await?;
        println!("bot: in room {room} as {}", client.nick());
        counts.send_modify(|c| c.rooms += 1);
    }
    // Both sets are bounded (the cap, REFUSED_MEMORY), so an inventor of
    // thread ids cannot grow them; the thread ids in them are at most
    // 1024 bytes each (the library drops longer ones on arrival).
    let mut joined = HashSet::new();
    let mut refused = HashSet::new();
    loop {
        match events.recv().await {
            Some(ClientEvent::Room(EngineEvent::UnjoinedInstance { chat, thread, from })) => {
                if joined.contains(&(chat.clone(), thread.clone())) {
                    continue;
                }
                let shown = shorten(&thread);
                if joined.len() >= options.max_channels {
                    if refused.len() >= REFUSED_MEMORY {
                        refused.clear();
                    }
                    if !refused.insert((chat.clone(), thread)) {
                        continue; // logged already
                    }
                    counts.send_modify(|c| c.refused += 1);
                    tracing::warn!(
                        chat = %match &chat {
                            Chat::Group(j) | Chat::Direct(j) => j,
                        },
                        thread = %shown,
                        %from,
                        cap = options.max_channels,
                        refused = counts.borrow().refused,
                        "bot: not joining a new app instance: at the cap"
                    );
                    continue;
                }
                // A join that fails (the room is being re-entered after a
                // reconnection, say) is logged and skipped: the next frame
                // of that instance asks again.
                let channel = match &chat {
                    Chat::Group(room) => match client.group(room.clone()).await {
                        Ok(g) => g.join_realtime_channel(&thread),
                        Err(e) => {
                            println!("bot: cannot use room {room} now: {e}");
                            continue;
                        }
                    },
                    Chat::Direct(contact) => client
                        .direct(contact.clone())
                        .join_realtime_channel(&thread),
                };
                match channel {
                    Ok(channel) => {
                        println!("bot: {from} uses app instance '{shown}': joining it");
                        joined.insert((chat, thread.clone()));
                        counts.send_modify(|c| c.joined = joined.len());
                        tokio::spawn(answer(channel, shown));
                    }
                    Err(e) => println!("bot: cannot join app instance '{shown}': {e}"),
                }
            }
            Some(ClientEvent::Missed { count }) => {
                counts.send_modify(|c| c.missed += count);
                tracing::warn!(count, "bot: fell behind and missed client events");
            }
            Some(ClientEvent::Closed) | None => return Ok(()),
            Some(other) => println!("bot: {other:?}"),
        }
    }
}

/// A thread id for a log line: at most 64 characters (a thread may be up
/// to 1024 bytes, and each line names one).
fn shorten(thread: &str) -> String {
    match thread.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &thread[..i]),
        None => thread.to_owned(),
    }
}

async fn answer(mut channel: Channel, thread: String) {
    while let Some(item) = channel.next().await {
        match item {
            Delivery::Payload(p) => {
                if let Some(rest) = p.data.strip_prefix(b"ping") {
                    let mut reply = b"pong".to_vec();
                    reply.extend_from_slice(rest);
                    if let Err(e) = channel.send(&reply).await {
                        println!("bot: could not answer on '{thread}': {e}");
                    }
                } else if !p.data.starts_with(b"pong") {
                    println!(
                        "bot: '{thread}': {} bytes from {}: {:?}",
                        p.data.len(),
                        p.from,
                        String::from_utf8_lossy(&p.data[..p.data.len().min(60)])
                    );
                }
            }
            other => println!("bot: '{thread}': {other:?}"),
        }
    }
}
