//! The browser tests' two sides: headless Chromium pages (the
//! `test-browser` package) and the XMPP side (a throwaway server, users
//! with their hosts).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use webxdc_host::transport::xmpp::XmppTransport;
use webxdc_host::{App, Origin};
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client as XmppClient, Config, GroupChat};
use xmpp_test_server::{Options, ServerKind, TestServer};

pub use test_browser::{serial, Page};

/// A throwaway XMPP server with one room in which the users meet.
pub struct Chat {
    pub server: TestServer,
    pub room: BareJid,
    /// Accounts made so far: a user may log in again (a restarted host).
    accounts: Mutex<std::collections::HashMap<String, (String, String)>>,
}

impl Chat {
    pub async fn start(kind: ServerKind) -> Chat {
        let mut options = Options::new(kind);
        options.muc_archive = true; // status updates live in the archive
        Chat::start_with(options).await
    }

    /// A server started with `options` (`muc_archive` is the caller's to
    /// set).
    pub async fn start_with(options: Options) -> Chat {
        let kind = options.kind;
        let server = tokio::task::spawn_blocking(move || TestServer::start(options))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot start {kind}: {e}"));
        let room = BareJid::new(&format!("host-test@{}", server.muc_domain())).unwrap();
        Chat {
            server,
            room,
            accounts: Default::default(),
        }
    }

    /// Logs `name` in (its account is created if needed) and enters the room.
    pub async fn user(&self, name: &str) -> User {
        let (jid, password) = {
            let mut accounts = self.accounts.lock().unwrap();
            accounts
                .entry(name.to_owned())
                .or_insert_with(|| self.server.account(name).expect("account"))
                .clone()
        };
        let config = Config::new(BareJid::new(&jid).unwrap(), password)
            .danger_plaintext_loopback_only(self.server.c2s_addr());
        let client = XmppClient::connect(config).await.expect("login");
        let chat = client.group(self.room.clone()).await.expect("room");
        User {
            transport: Arc::new(XmppTransport::new(client.clone(), chat.clone())),
            client,
            chat,
        }
    }
}

/// One logged-in user and its transport in the room.
pub struct User {
    pub client: XmppClient,
    pub transport: Arc<XmppTransport>,
    /// The room, as entered.
    pub chat: GroupChat,
}

impl User {
    pub async fn serve(&self, app: &Arc<App>, instance: &str) -> Origin {
        Origin::serve(app.clone(), self.transport.clone(), instance)
            .await
            .expect("serve")
    }
}
