//! The ping/pong responder shared by the `bot` and `demo` examples.

use std::collections::HashSet;

use futures::StreamExt;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Channel, Chat, Client, ClientEvent, Delivery, EngineEvent};

/// Most app instances the bot takes part in. An occupant can invent thread
/// ids at will; without a cap each one would cost the bot a channel and a
/// task for as long as it runs.
const MAX_CHANNELS: usize = 64;

/// Enters `rooms` and takes part in every realtime channel it sees there
/// (and in 1:1 chats): prints what arrives, answers `ping…` with `pong…`
/// (same suffix, so the pinger can match the answer). Runs until the
/// client is shut down.
pub async fn serve(
    client: Client,
    rooms: Vec<BareJid>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Subscribe before entering the rooms so that no event is missed.
    let mut events = client.events();
    for room in rooms {
        client.group(room.clone()).await?;
        println!("bot: in room {room} as {}", client.nick());
    }
    let mut joined = HashSet::new();
    loop {
        match events.recv().await {
            Some(ClientEvent::Room(EngineEvent::UnjoinedInstance { chat, thread, from })) => {
                if joined.contains(&(chat.clone(), thread.clone())) {
                    continue;
                }
                if joined.len() >= MAX_CHANNELS {
                    println!(
                        "bot: {from} uses app instance '{thread}': not joining, already in {MAX_CHANNELS} instances"
                    );
                    continue;
                }
                joined.insert((chat.clone(), thread.clone()));
                println!("bot: {from} uses app instance '{thread}': joining it");
                let channel = match &chat {
                    Chat::Group(room) => client
                        .group(room.clone())
                        .await?
                        .join_realtime_channel(&thread)?,
                    Chat::Direct(contact) => client
                        .direct(contact.clone())
                        .join_realtime_channel(&thread)?,
                };
                tokio::spawn(answer(channel, thread));
            }
            Some(ClientEvent::Closed) | None => return Ok(()),
            Some(other) => println!("bot: {other:?}"),
        }
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
