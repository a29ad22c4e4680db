//! What to run: [`ServerKind`] and [`Options`].

use std::fmt;
use std::net::Ipv4Addr;

/// Which XMPP server software to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Prosody (Debian package `prosody`, version 0.12).
    Prosody,
    /// ejabberd (Debian package `ejabberd`, version 23.01).
    Ejabberd,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::Prosody => "prosody",
            ServerKind::Ejabberd => "ejabberd",
        })
    }
}

/// How to configure a [`TestServer`](crate::TestServer).
///
/// Start from [`Options::prosody`] or [`Options::ejabberd`] and change the
/// fields as needed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which server software to run.
    pub kind: ServerKind,
    /// Enable MUC archiving (XEP-0313 on the MUC service), archiving every
    /// room by default, so a test can check that nothing gets stored.
    ///
    /// Prosody: `muc_mam` on the MUC component with `muc_log_by_default` and
    /// `muc_log_all_rooms`. ejabberd: `mod_mam` with `default: always` and
    /// the MUC default room option `mam: true`.
    pub muc_archive: bool,
    /// Client-to-server rate limit; `None` (the default and our recommended
    /// server configuration) means no limit.
    ///
    /// `Some("10kb/s")` reproduces Debian's stock Prosody configuration.
    /// Accepted forms: a plain number of bytes per second (`"3000"`) or a
    /// number with a unit and `/s` (`"500b/s"`, `"10kb/s"`, `"1mb/s"`).
    ///
    /// Prosody gets its `limits` module. Rates in `kb/s`, `mb/s` or `gb/s`
    /// are passed as written and so keep Prosody's decimal meaning
    /// (`"10kb/s"` = 10000 B/s); plain bytes (and `b/s`) are converted so
    /// that Prosody applies exactly that many bytes per second (rounded up
    /// to a multiple of 10; Prosody's own parser would read `"500b/s"` as
    /// 5000 B/s). Note that Prosody's default network backend has no burst
    /// allowance: it pauses reading for `bytes / rate` seconds after each
    /// read.
    ///
    /// ejabberd gets a c2s shaper of that many bytes per second, counting
    /// `k` as 1024 (`"10kb/s"` = 10240 B/s).
    pub c2s_rate_limit: Option<String>,
    /// Generate a throwaway CA and a certificate for `localhost` (see
    /// [`TestServer::ca_file`](crate::TestServer::ca_file)) and require
    /// STARTTLS on c2s. When `false` the server offers no TLS and allows
    /// plaintext authentication (including SASL PLAIN).
    pub tls: bool,
    /// Offer XEP-0363 HTTP file upload on a free `127.0.0.1` HTTP port
    /// (plain HTTP unless [`http_upload_tls`](Options::http_upload_tls); see [`TestServer::http_upload`](crate::TestServer::http_upload)).
    ///
    /// Prosody only: `mod_http_file_share` as the component
    /// `upload.localhost` (10 MiB per file), its slot URLs pointing at
    /// `http://127.0.0.1:PORT/`. ejabberd refuses this option
    /// ([`std::io::ErrorKind::Unsupported`]).
    pub http_upload: bool,
    /// Offer XEP-0363 HTTP file upload over HTTPS instead (implies
    /// `http_upload`): the upload's port speaks TLS with a certificate for
    /// `localhost` signed by the throwaway CA (generated as for
    /// [`tls`](Options::tls), see
    /// [`TestServer::ca_file`](crate::TestServer::ca_file)), and slot URLs
    /// are `https://localhost:PORT/…` so that a client checks the
    /// certificate for the name in the URL. c2s TLS stays as `tls` says.
    ///
    /// Prosody only (`https_ports` on `127.0.0.1` with `https_ssl`).
    pub http_upload_tls: bool,
    /// The XMPP domain to serve; `None` (the default) means `localhost`.
    /// The MUC service is `conference.<domain>`. A lower-case DNS name
    /// (letters, digits, `-`, `.`). Used by
    /// [`FederatedPair`](crate::FederatedPair) (`a.example`, `b.example`).
    pub domain: Option<String>,
    /// Archive every user's messages (XEP-0313 on the user's own JID,
    /// archiving by default), so a test can check what a member's server
    /// stored.
    ///
    /// Prosody: `mam` with `default_archive_policy = true`. ejabberd:
    /// `mod_mam` with `default: always`.
    pub user_archive: bool,
    /// Talk server-to-server: listen for s2s on a free port of
    /// `127.0.0.1` (see [`TestServer::s2s_addr`](crate::TestServer::s2s_addr))
    /// and resolve remote domains only through the DNS server at this
    /// address, port 53 (the one a [`FederatedPair`](crate::FederatedPair)
    /// runs). `None` (the default): no s2s at all.
    ///
    /// Authentication is server dialback (XEP-0220) over plaintext
    /// streams, which both servers accept on loopback. Prosody runs in a
    /// private mount namespace of its own where `/etc/resolv.conf` names
    /// only this nameserver (its resolver reads no other configuration;
    /// this needs root, as binding port 53 does), with `lua-unbound`
    /// (installed on demand) as its resolver; ejabberd gets it in its
    /// inetrc.
    pub s2s_nameserver: Option<Ipv4Addr>,
}

impl Options {
    /// Defaults for `kind`: no MUC archive, no rate limit, no TLS, no upload
    /// (neither plain nor HTTPS).
    pub fn new(kind: ServerKind) -> Self {
        Options {
            kind,
            muc_archive: false,
            c2s_rate_limit: None,
            tls: false,
            http_upload: false,
            http_upload_tls: false,
            domain: None,
            user_archive: false,
            s2s_nameserver: None,
        }
    }

    /// Defaults for Prosody: no MUC archive, no rate limit, no TLS.
    pub fn prosody() -> Self {
        Self::new(ServerKind::Prosody)
    }

    /// Defaults for ejabberd: no MUC archive, no rate limit, no TLS.
    pub fn ejabberd() -> Self {
        Self::new(ServerKind::Ejabberd)
    }
}
