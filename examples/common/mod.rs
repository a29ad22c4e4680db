//! The ping/pong responder shared by the `bot` and `demo` examples.

use std::collections::HashSet;

use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use webxdc_realtime_xmpp::engine::{Chat, EngineEvent};
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Channel, Client, ClientEvent, Delivery};

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
            Ok(ClientEvent::Room(EngineEvent::UnjoinedInstance { chat, thread, from })) => {
                if !joined.insert((chat.clone(), thread.clone())) {
                    continue;
                }
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
            Ok(ClientEvent::Closed) | Err(RecvError::Closed) => return Ok(()),
            Ok(other) => println!("bot: {other:?}"),
            Err(RecvError::Lagged(n)) => println!("bot: missed {n} client events"),
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
