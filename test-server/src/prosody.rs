//! Prosody 0.12: config, command line and accounts.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::files::{create_dir, write_file};
use crate::install::{ensure_package, find_program};
use crate::server::{Layout, ServerConfig};
use crate::util::{annotate, unique_id};
use crate::{DOMAIN, UPLOAD_DOMAIN};

/// Installs Prosody if `prosody` is missing.
pub(crate) fn ensure_installed() -> io::Result<()> {
    ensure_package("prosody", Some("prosody"), || {
        find_program("prosody").is_some()
    })
}

/// Installs `lua-unbound` if it is missing: Prosody's resolver for s2s.
/// Without it Prosody falls back to its old pure-Lua resolver, whose
/// lookups of a peer took 0.7-1.7 s here (queries sent again after its 1 s
/// retry delay) against about 60 ms with libunbound, and which Prosody
/// warns about at every start. Debian's `prosody` only recommends it.
pub(crate) fn ensure_resolver_installed() -> io::Result<()> {
    ensure_package("lua-unbound", None, || {
        // Prosody runs on Lua 5.4 (Debian 12): /usr/lib/<triplet>/lua/5.4.
        std::fs::read_dir("/usr/lib").is_ok_and(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("lua/5.4/lunbound.so").is_file())
        })
    })
}

/// A configured Prosody instance (config written, not necessarily
/// running).
pub(crate) struct Prosody {
    program: PathBuf,
    config: PathBuf,
    /// `DATA/<domain>/accounts`, where `internal_plain` keeps passwords.
    accounts_dir: PathBuf,
    /// With s2s: the `resolv.conf` that Prosody sees (naming only the
    /// test's DNS server), bind-mounted over `/etc/resolv.conf` in a mount
    /// namespace of its own.
    resolv_conf: Option<PathBuf>,
}

/// A tiny global module of ours:
///
/// * Shuts Prosody down when its stdin reaches end-of-file, i.e. when the
///   process that started it is gone (we never write to the pipe).
///   Shutdown must run inside Prosody's main async thread, as `mod_posix`
///   does for SIGTERM.
/// * Makes shutdown prompt: when clients were connected, the last step of
///   shutdown runs from a resumed async task after the event loop went
///   back to sleep, and the loop would only notice on its next timer, up
///   to a second later. A short timer wakes it right away.
const HELPER_MODULE: &str = r#"-- Written by xmpp-test-server.
module:set_global();
local server = require "net.server";
local timer = require "util.timer";
local watcher;
watcher = server.watchfd(0, function ()
	module:log("info", "stdin closed: the owning process is gone, shutting down");
	watcher:close();
	prosody.main_thread:run(function ()
		prosody.unlock_globals();
		prosody.shutdown("owner process exited");
		prosody.lock_globals();
	end);
end);
module:hook_global("server-stopped", function ()
	timer.add_task(0.01, function () end);
end);
"#;

impl Prosody {
    /// Writes the config and directories for a server on `port`.
    pub(crate) fn configure(cfg: &ServerConfig<'_>, port: u16) -> io::Result<(Prosody, Layout)> {
        let program = find_program("prosody")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "prosody not found"))?;
        let root = cfg.root;
        let data = root.join("data");
        let plugins = root.join("plugins");
        let certs_dir = root.join("certs");
        let accounts_dir = data.join(path_encode(cfg.domain)).join("accounts");
        for dir in [&accounts_dir, &plugins, &certs_dir] {
            create_dir(dir)?;
        }
        write_file(&plugins.join("mod_xts_helper.lua"), HELPER_MODULE)?;
        let resolv_conf = match cfg.s2s {
            Some(s2s) => {
                // The target of the bind mount (see `private_resolv_conf`);
                // without it the spawn would fail with a bare ENOENT.
                if !Path::new("/etc/resolv.conf").exists() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "Prosody with s2s needs /etc/resolv.conf to exist: a file of \
                         ours is bind-mounted over it in Prosody's own mount namespace",
                    ));
                }
                let file = root.join("resolv.conf");
                write_file(
                    &file,
                    &format!(
                        "# Written by xmpp-test-server: only the test's DNS server.\n\
                         nameserver {}\n",
                        s2s.nameserver
                    ),
                )?;
                Some(file)
            }
            None => None,
        };

        let layout = Layout {
            root: root.to_path_buf(),
            server_log: root.join("prosody.log"),
            console_log: root.join("console.log"),
        };
        let config = root.join("prosody.cfg.lua");
        write_file(
            &config,
            &config_text(cfg, port, &layout, &data, &plugins, &certs_dir),
        )?;
        Ok((
            Prosody {
                program,
                config,
                accounts_dir,
                resolv_conf,
            },
            layout,
        ))
    }

    /// `prosody --config FILE -F`: foreground, no daemonizing.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--config").arg(&self.config).arg("-F");
        if let Some(dir) = self.config.parent() {
            cmd.current_dir(dir);
        }
        if let Some(resolv_conf) = &self.resolv_conf {
            private_resolv_conf(&mut cmd, resolv_conf);
        }
        cmd
    }

    /// Writes the `internal_plain` account file directly: Prosody reads it
    /// on every login (no cache), so this works while it runs and takes
    /// microseconds, unlike `prosodyctl register` (a whole Lua start-up).
    /// The file is written under a temporary name and hard-linked into
    /// place, so Prosody never sees a partial file and an existing account
    /// is never overwritten, even by concurrent calls.
    pub(crate) fn create_account(
        &self,
        name: &str,
        password: &str,
        domain: &str,
    ) -> io::Result<()> {
        let file = self.accounts_dir.join(format!("{}.dat", path_encode(name)));
        let tmp = self.accounts_dir.join(format!(
            "{}.xts-tmp-{}-{}",
            path_encode(name),
            std::process::id(),
            unique_id()
        ));
        let contents = format!(
            "return {{\n\t[\"password\"] = {};\n}};\n",
            lua_string(password)
        );
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(contents.as_bytes())?;
            std::fs::hard_link(&tmp, &file)
        })();
        let _ = std::fs::remove_file(&tmp);
        result.map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("the account {name}@{domain} already exists"),
                )
            } else {
                annotate(e, &format!("cannot write {}", file.display()))
            }
        })
    }
}

/// The whole `prosody.cfg.lua`.
fn config_text(
    cfg: &ServerConfig<'_>,
    port: u16,
    layout: &Layout,
    data: &Path,
    plugins: &Path,
    certs_dir: &Path,
) -> String {
    let tls = cfg.c2s_tls && cfg.certs.is_some();
    let https = cfg.https && cfg.certs.is_some();
    let mut modules = vec![
        "roster",
        "saslauth",
        "disco",
        "ping",
        "smacks",
        "xts_helper",
    ];
    if tls {
        modules.push("tls");
    }
    if cfg.rate.is_some() {
        modules.push("limits");
    }
    if cfg.s2s.is_some() {
        modules.push("dialback");
    }
    if cfg.user_archive {
        modules.push("mam");
    }
    let modules: String = modules
        .iter()
        .map(|m| format!("{}; ", lua_string(m)))
        .collect();
    let level = if cfg.debug { "debug" } else { "info" };

    let mut c = String::new();
    let _ = write!(
        c,
        r#"-- Written by xmpp-test-server: a throwaway loopback test server.
run_as_root = true -- tests often run as root; harmless otherwise
data_path = {data}
pidfile = {pidfile}
plugin_paths = {{ {plugins} }}
certificates = {certs_dir}
log = {{ {level} = {log} }}

-- Loopback only: no component ports or direct TLS; s2s only when asked
-- for; HTTP (or HTTPS) only for the upload service when asked for.
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
s2s_ports = {{ {s2s_ports} }}
s2s_interfaces = {{ "127.0.0.1" }}
component_ports = {{ }}
http_ports = {{ {http_ports} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ {https_ports} }}
https_interfaces = {{ "127.0.0.1" }}

-- Realtime traffic is many small stanzas: with Nagle's algorithm on (the
-- default) a small write waits for the peer's delayed ACK, adding about
-- 40 ms per hop. Part of the recommended configuration (docs/operators.md).
network_settings = {{ nagle = false }}

modules_enabled = {{ {modules}}}
modules_disabled = {{ {disabled}}}

-- Plain storage so that the test harness can create accounts by writing
-- data files.
authentication = "internal_plain"
c2s_require_encryption = {tls}
allow_unencrypted_plain_auth = {plain}
"#,
        data = lua_path(data),
        pidfile = lua_path(&layout.root.join("prosody.pid")),
        plugins = lua_path(plugins),
        certs_dir = lua_path(certs_dir),
        log = lua_path(&layout.server_log),
        plain = !tls,
        s2s_ports = cfg.s2s.map(|s| s.port.to_string()).unwrap_or_default(),
        disabled = if cfg.s2s.is_some() { "" } else { "\"s2s\" " },
        http_ports = cfg
            .http_port
            .filter(|_| !https)
            .map(|p| p.to_string())
            .unwrap_or_default(),
        https_ports = cfg
            .http_port
            .filter(|_| https)
            .map(|p| p.to_string())
            .unwrap_or_default(),
    );
    if cfg.http_port.is_some() {
        // Requests to 127.0.0.1:PORT carry no upload host name.
        let _ = writeln!(c, "http_default_host = {}", lua_string(UPLOAD_DOMAIN));
    }
    if let Some(certs) = cfg.certs {
        let ssl = format!(
            "{{ certificate = {}; key = {}; }}",
            lua_path(&certs.cert),
            lua_path(&certs.key)
        );
        if tls {
            let _ = writeln!(c, "ssl = {ssl}");
        }
        if https {
            // The upload's port: the certificate for localhost.
            let _ = writeln!(c, "https_ssl = {ssl}");
        }
    }
    if cfg.s2s.is_some() {
        // Dialback over plaintext on loopback (the default would demand
        // TLS, and the peers have no certificates of each other's CA).
        // Unauthenticated stanzas are queued only while the connection is
        // set up; 10 s to connect instead of 90 so that a peer that is
        // down bounces stanzas soon (a realtime frame is stale by then).
        c.push_str(
            "s2s_require_encryption = false\n\
             s2s_secure_auth = false\n\
             s2s_timeout = 10\n",
        );
    }
    if cfg.user_archive {
        // Archive every user's messages unless the user says otherwise,
        // and keep them: a test checks what got stored.
        c.push_str("default_archive_policy = true\narchive_expires_after = \"never\"\n");
    }
    if let Some(rate) = cfg.rate {
        // As in Debian's stock prosody.cfg.lua (default burst: 2 s).
        let _ = writeln!(
            c,
            "limits = {{ c2s = {{ rate = {}; }}; }}",
            lua_string(&rate.prosody)
        );
    }
    let _ = write!(
        c,
        r#"
VirtualHost {domain}

Component {muc} "muc"
	muc_room_locking = false
	restrict_room_creation = false
	muc_tombstones = false
	muc_room_default_history_length = 0
"#,
        domain = lua_string(cfg.domain),
        muc = lua_string(cfg.muc_domain),
    );
    if cfg.muc_archive {
        c.push_str(
            "\tmodules_enabled = { \"muc_mam\" }\n\
             \tmuc_log_by_default = true\n\
             \tmuc_log_all_rooms = true\n",
        );
    }
    if let Some(http) = cfg.http_port {
        // Slot URLs must name the loopback port, whatever Host header a
        // client sends; any Host is served by the upload component. Over
        // HTTPS they name localhost, the name the certificate is for.
        let (scheme, host) = if https {
            ("https", DOMAIN)
        } else {
            ("http", "127.0.0.1")
        };
        let _ = write!(
            c,
            r#"
Component {upload} "http_file_share"
	http_file_share_size_limit = 10 * 1024 * 1024
	http_external_url = "{scheme}://{host}:{http}/"
	http_host = {host_lua}
"#,
            upload = lua_string(UPLOAD_DOMAIN),
            host_lua = lua_string(host),
        );
    }
    c
}

/// Makes `cmd` run in a mount namespace of its own in which `resolv_conf`
/// is bind-mounted over `/etc/resolv.conf`: Prosody's resolver (`net.dns`)
/// takes its nameservers from that file only and has no option for them.
/// The namespace is made in the child between `fork` and `exec`, so the
/// process id is still the server's (supervision, `SIGTERM` and the pid
/// checks of the tests see Prosody itself). Needs `CAP_SYS_ADMIN` (root);
/// without it the spawn fails with the `unshare` error.
fn private_resolv_conf(cmd: &mut Command, resolv_conf: &Path) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    // Built before the fork: allocating in the child is not safe.
    let source = CString::new(resolv_conf.as_os_str().as_bytes());
    let target = c"/etc/resolv.conf";
    let root = c"/";
    // SAFETY: the closure only makes raw syscalls (unshare, mount) on
    // strings prepared before the fork, and builds an io::Error from errno,
    // all async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let source = source
                .as_ref()
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Our mounts must not propagate back to the machine's namespace.
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Prosody's `util.datamanager` encoding of host and user names in paths:
/// every non-alphanumeric byte becomes `%xx` (lowercase hex).
fn path_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// A Lua string literal.
fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn lua_path(p: &Path) -> String {
    lua_string(&p.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_datamanager() {
        assert_eq!(path_encode("localhost"), "localhost");
        assert_eq!(
            path_encode("conference.localhost"),
            "conference%2elocalhost"
        );
        assert_eq!(path_encode("a-b_c"), "a%2db%5fc");
    }

    fn config(certs: Option<&crate::tls::Certs>, c2s_tls: bool, https: bool) -> String {
        let root = Path::new("/tmp/xts");
        let cfg = ServerConfig {
            root,
            muc_archive: false,
            rate: None,
            certs,
            c2s_tls,
            debug: false,
            http_port: Some(5281),
            https,
            domain: DOMAIN,
            muc_domain: "conference.localhost",
            user_archive: false,
            s2s: None,
            cluster: None,
        };
        let layout = Layout {
            root: root.into(),
            server_log: root.join("p.log"),
            console_log: root.join("c.log"),
        };
        config_text(&cfg, 5222, &layout, root, root, root)
    }

    #[test]
    fn upload_over_http_or_https() {
        let certs = crate::tls::Certs {
            ca: "/c/ca.pem".into(),
            cert: "/c/localhost.crt".into(),
            key: "/c/localhost.key".into(),
        };
        let plain = config(None, false, false);
        assert!(plain.contains("http_ports = { 5281 }"), "{plain}");
        assert!(plain.contains("https_ports = {  }"), "{plain}");
        assert!(plain.contains("http_external_url = \"http://127.0.0.1:5281/\""));
        assert!(!plain.contains("ssl ="), "{plain}");

        // HTTPS upload without c2s TLS: the certificate for the HTTPS port
        // only, no STARTTLS.
        let https = config(Some(&certs), false, true);
        assert!(https.contains("http_ports = {  }"), "{https}");
        assert!(https.contains("https_ports = { 5281 }"), "{https}");
        assert!(https.contains("https_interfaces = { \"127.0.0.1\" }"));
        assert!(
            https.contains(
                "https_ssl = { certificate = \"/c/localhost.crt\"; key = \"/c/localhost.key\"; }"
            ),
            "{https}"
        );
        assert!(!https.contains("\nssl ="), "{https}");
        assert!(!https.contains("\"tls\""), "{https}");
        assert!(https.contains("c2s_require_encryption = false"), "{https}");
        assert!(https.contains("http_external_url = \"https://localhost:5281/\""));

        // Both.
        let both = config(Some(&certs), true, true);
        assert!(both.contains("\nssl = {"), "{both}");
        assert!(both.contains("https_ssl = {"), "{both}");
        assert!(both.contains("c2s_require_encryption = true"), "{both}");
    }

    #[test]
    fn escapes_lua_strings() {
        assert_eq!(lua_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
