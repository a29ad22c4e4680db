//! TCP connectors that switch Nagle's algorithm off.
//!
//! Realtime payloads are small stanzas written one at a time. With Nagle's
//! algorithm on (the socket default, and what tokio-xmpp's own connectors
//! leave in place) a small write that follows another unacknowledged one
//! waits for the server's delayed ACK: about 40 ms per hop on Linux, which
//! measured as a ~50 ms median round trip through a loopback server instead
//! of a few milliseconds. These connectors are tokio-xmpp's STARTTLS and
//! plaintext connectors with `TCP_NODELAY` set on the socket.

use std::borrow::Cow;

use sasl::common::ChannelBinding;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::connect::tls_common::TlsStream;
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::error::ProtocolError;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::{initiate_stream, PendingFeaturesRecv, StreamHeader, Timeouts};
use tokio_xmpp::Error;

async fn tcp(dns: &DnsConfig) -> Result<TcpStream, Error> {
    let stream = dns.resolve().await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn header(jid: &Jid) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(jid.domain().as_str())),
        from: None,
        id: None,
    }
}

/// STARTTLS (required: a server that does not offer it is refused).
#[derive(Debug, Clone)]
pub(crate) struct StartTls(pub DnsConfig);

impl ServerConnector for StartTls {
    type Stream = BufStream<TlsStream<TcpStream>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), Error> {
        let plain = BufStream::new(tcp(&self.0).await?);
        let (features, stream) = initiate_stream(plain, ns, header(jid), timeouts)
            .await?
            .recv_features()
            .await?;
        if !features.can_starttls() {
            return Err(Error::Protocol(ProtocolError::NoTls));
        }
        let (tls, binding) =
            tokio_xmpp::connect::starttls::starttls(stream, jid.domain().as_str()).await?;
        let pending = initiate_stream(BufStream::new(tls), ns, header(jid), timeouts).await?;
        Ok((pending, binding))
    }
}

/// No encryption; only ever built for loopback addresses.
#[derive(Debug, Clone)]
pub(crate) struct Plaintext(pub DnsConfig);

impl ServerConnector for Plaintext {
    type Stream = BufStream<TcpStream>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), Error> {
        let stream = BufStream::new(tcp(&self.0).await?);
        let pending = initiate_stream(stream, ns, header(jid), timeouts).await?;
        Ok((pending, ChannelBinding::None))
    }
}
