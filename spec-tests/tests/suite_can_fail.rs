//! The suite catches broken backends: deliberately broken wrappers around
//! a correct backend (the broadcast hub of `examples/broadcast.rs`) must
//! fail the cases that check what they break.

use std::collections::VecDeque;
use std::time::Duration;

#[path = "../examples/broadcast.rs"]
mod broadcast;

use broadcast::{BroadcastChannel, BroadcastChat, BroadcastHarness};
use spec_tests::cases;
use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};
use spec_tests::Outcome;

/// How the wrapper breaks the contract.
#[derive(Clone, Copy)]
enum Bug {
    /// Every payload sent is also delivered back to the sender.
    SelfEcho,
    /// `leave` does nothing.
    LeaveIgnored,
}

struct Broken {
    inner: BroadcastHarness,
    bug: Bug,
}

struct BrokenChannel {
    inner: BroadcastChannel,
    bug: Bug,
    echoes: VecDeque<Vec<u8>>,
}

impl Harness for Broken {
    type Chat = BroadcastChat;
    type Channel = BrokenChannel;
    fn name(&self) -> String {
        "broken".into()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn new_chat(&mut self, members: usize) -> Result<BroadcastChat, HarnessError> {
        self.inner.new_chat(members).await
    }
    async fn other_chat(&mut self, chat: &BroadcastChat) -> Result<BroadcastChat, HarnessError> {
        self.inner.other_chat(chat).await
    }
    async fn join(
        &mut self,
        chat: &BroadcastChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<BrokenChannel, JoinFailure>, HarnessError> {
        let bug = self.bug;
        Ok(self
            .inner
            .join(chat, member, instance)
            .await?
            .map(|inner| BrokenChannel {
                inner,
                bug,
                echoes: VecDeque::new(),
            }))
    }
    async fn add_device(
        &mut self,
        chat: &BroadcastChat,
        member: Member,
    ) -> Result<Member, HarnessError> {
        self.inner.add_device(chat, member).await
    }
    async fn restart(&mut self) -> Result<(), HarnessError> {
        self.inner.restart().await
    }
}

impl Channel for BrokenChannel {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        self.inner.send(data).await?;
        if let Bug::SelfEcho = self.bug {
            self.echoes.push_back(data.to_vec());
        }
        Ok(())
    }
    async fn recv(&mut self, timeout: Duration) -> Received {
        match self.echoes.pop_front() {
            Some(d) => Received::Payload(d),
            None => self.inner.recv(timeout).await,
        }
    }
    async fn leave(&mut self) {
        if let Bug::LeaveIgnored = self.bug {
            return;
        }
        self.inner.leave().await
    }
}

fn broken(bug: Bug) -> Broken {
    Broken {
        inner: BroadcastHarness::new(),
        bug,
    }
}

fn assert_fails(outcome: Outcome, case: &str) {
    assert!(
        matches!(outcome, Outcome::Fail(_)),
        "{case} should fail on a broken backend, got {outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_echo_is_caught() {
    assert_fails(
        cases::no_self_echo(broken(Bug::SelfEcho)).await,
        "no_self_echo",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ignored_leave_is_caught() {
    assert_fails(
        cases::leave_stops_delivery_at_once(broken(Bug::LeaveIgnored)).await,
        "leave_stops_delivery_at_once",
    );
    assert_fails(
        cases::send_after_leave_is_an_error(broken(Bug::LeaveIgnored)).await,
        "send_after_leave_is_an_error",
    );
    assert_fails(
        cases::join_again_after_leave_works(broken(Bug::LeaveIgnored)).await,
        "join_again_after_leave_works",
    );
}
