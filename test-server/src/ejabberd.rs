//! ejabberd 23.01: config, command line and accounts.
//!
//! We run the Erlang VM directly instead of through `ejabberdctl`:
//!
//! * `ejabberdctl` re-executes itself as user `ejabberd` via `su` when run
//!   as root (so the temporary directory would have to belong to that
//!   user), sources `/etc/ejabberd/ejabberdctl.cfg` (which overrides
//!   `--config`), and starts or shares a global `epmd` daemon.
//! * Without `-sname`/`-name` the node is not distributed
//!   (`nonode@nohost`): no `epmd`, no distribution port, no node-name
//!   clashes between parallel servers. Mnesia is happy with that, and the
//!   node name stays the same across restarts, so the data survives.
//! * Admin commands normally need distribution (`ejabberdctl register`
//!   boots a second VM and takes about a second). Instead, a small loop in
//!   the server node reads commands from its stdin and answers on stdout
//!   (`xts-reply ID RESULT`), which makes creating an account take a
//!   millisecond. The same channel stops the node quickly (see
//!   [`request_stop`]); end-of-file on stdin (the owner died) stops it too.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::files::{create_dir, write_file};
use crate::install::{ensure_package, find_program};
use crate::process::Control;
use crate::server::{Layout, ServerConfig};
use crate::util::{annotate, unique_id};

/// Prefix of the lines our command loop prints on stdout.
const REPLY_PREFIX: &str = "xts-reply ";
/// How long an admin command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// The command loop, evaluated in the server node before ejabberd starts.
/// It runs in its own process and only calls into ejabberd when asked.
/// Arguments are whitespace-separated tokens that the crate has validated
/// (account names and hex passwords), so no quoting is needed.
const CONTROL_LOOP: &str = r#"
Reply = fun(Id, Term) -> io:format("xts-reply ~s ~w~n", [Id, Term]) end,
Handle = fun
    (["register", Id, User, Host, Password]) ->
        Reply(Id, (catch ejabberd_auth:try_register(
            list_to_binary(User), list_to_binary(Host), list_to_binary(Password))));
    (["stop", Id]) ->
        % Much faster than init:stop() (which lingers for a second after
        % stopping everything): stop the applications that hold state,
        % flush the log files, and halt.
        application:stop(ejabberd),
        application:stop(mnesia),
        [(catch logger_std_h:filesync(H)) || H <- logger:get_handler_ids()],
        Reply(Id, ok),
        erlang:halt(0);
    (["eval", Id, Hex]) ->
        % An Erlang expression written by the crate (the cluster's
        % queries, see cluster_eval), hex-encoded to be one token.
        Reply(Id, (catch begin
            {ok, Tokens, _} = erl_scan:string(binary_to_list(
                binary:decode_hex(list_to_binary(Hex)))),
            {ok, Exprs} = erl_parse:parse_exprs(Tokens),
            {value, Value, _} = erl_eval:exprs(Exprs, []),
            Value
        end));
    ([Cmd, Id | _]) ->
        Reply(Id, {error, {unknown_command, Cmd}});
    (_) ->
        ok
end,
Loop = fun Loop() ->
    case io:get_line('') of
        eof -> init:stop();
        {error, _} -> init:stop();
        Line -> Handle(string:lexemes(Line, " \t\r\n")), Loop()
    end
end,
spawn(Loop).
"#;

/// Installs ejabberd if it is missing.
pub(crate) fn ensure_installed() -> io::Result<()> {
    ensure_package("ejabberd", Some("ejabberd"), || {
        find_program("ejabberdctl").is_some() && find_program("erl").is_some()
    })
}

/// A configured ejabberd instance (config written, not necessarily
/// running).
pub(crate) struct Ejabberd {
    erl: PathBuf,
    /// Where Debian keeps the ejabberd application and its dependencies.
    erl_libs: String,
    root: PathBuf,
    config: PathBuf,
    spool: PathBuf,
    log: PathBuf,
    debug: bool,
    /// Distribution settings when this is a node of an
    /// [`EjabberdCluster`](crate::EjabberdCluster).
    cluster: Option<ClusterNode>,
}

/// How one node of an [`EjabberdCluster`](crate::EjabberdCluster) takes
/// part in Erlang distribution.
///
/// There is no `epmd`: with `-erl_epmd_port` a node listens for
/// distribution on that port and looks for every other node on the same
/// port (at the address in the other node's name), so the nodes of one
/// cluster share a port and differ in their loopback address. Nothing is
/// left to stop or to orphan, and the machine's `epmd` port (4369) is
/// never used.
#[derive(Clone, Debug)]
pub(crate) struct ClusterNode {
    /// The node's name, `nI@127.A.B.C`: an address, so that no name is
    /// ever looked up.
    pub(crate) name: String,
    /// The loopback address in `name`, which the distribution listener
    /// binds.
    pub(crate) ip: Ipv4Addr,
    /// The distribution port of every node of the cluster.
    pub(crate) dist_port: u16,
    /// The cluster's shared secret (hex).
    pub(crate) cookie: String,
    /// The node whose cluster this one joins when it first starts (the
    /// cluster's first node); `None` for the first node itself.
    pub(crate) join: Option<String>,
}

impl Ejabberd {
    /// Writes the config and directories for a server on `port`.
    pub(crate) fn configure(cfg: &ServerConfig<'_>, port: u16) -> io::Result<(Ejabberd, Layout)> {
        let (erl, erl_libs) = erlang_paths()?;
        let root = cfg.root.to_path_buf();
        let spool = root.join("spool");
        let logs = root.join("logs");
        create_dir(&spool)?;
        create_dir(&logs)?;
        create_dir(&root.join("contrib"))?;
        write_file(&root.join("inetrc"), &inetrc(cfg, &root)?)?;
        let config = root.join("ejabberd.yml");
        write_file(&config, &config_text(cfg, port))?;
        if let Some(node) = cfg.cluster {
            write_cookie(&root, &node.cookie)?;
        }
        let layout = Layout {
            root: root.clone(),
            server_log: logs.join("ejabberd.log"),
            console_log: root.join("console.log"),
        };
        Ok((
            Ejabberd {
                erl,
                erl_libs,
                log: layout.server_log.clone(),
                root,
                config,
                spool,
                debug: cfg.debug,
                cluster: cfg.cluster.cloned(),
            },
            layout,
        ))
    }

    /// Whether this is a node of an ejabberd cluster.
    pub(crate) fn is_cluster_node(&self) -> bool {
        self.cluster.is_some()
    }

    /// The `erl` command line `ejabberdctl foreground` would build, minus
    /// distribution, plus our command loop.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = self.bare_command();
        cmd.args(["-s", "ejabberd"]);
        cmd
    }

    /// [`command`](Self::command) without starting ejabberd: the VM and
    /// the command loop only. For a node's first start when it is to join
    /// a cluster: `join_cluster` drops the node's database anyway and then
    /// starts ejabberd, so starting it before would be wasted work.
    pub(crate) fn bare_command(&self) -> Command {
        let mut cmd = Command::new(&self.erl);
        cmd.current_dir(&self.spool)
            .env("HOME", &self.root)
            .env("ERL_LIBS", &self.erl_libs)
            .env("EJABBERD_CONFIG_PATH", &self.config)
            .env("EJABBERD_LOG_PATH", &self.log)
            .env("ERL_INETRC", self.root.join("inetrc"))
            .env(
                "ERL_CRASH_DUMP",
                self.root.join("logs").join("erl_crash.dump"),
            )
            .env("CONTRIB_MODULES_PATH", self.root.join("contrib"))
            .env("CONTRIB_MODULES_CONF_DIR", self.root.join("contrib"))
            .env_remove("EJABBERD_PID_PATH")
            .args(["-noshell", "-env", "ERL_CRASH_DUMP_BYTES", "0"])
            .arg("-mnesia")
            .arg("dir")
            .arg(erlang_string(&self.spool.to_string_lossy()))
            .args(["-eval", CONTROL_LOOP]);
        if let Some(node) = &self.cluster {
            let [a, b, c, d] = node.ip.octets();
            let port = node.dist_port.to_string();
            // The cookie is read from $HOME/.erlang.cookie (see
            // write_cookie), not given as -setcookie, which every local
            // user could read in the process list.
            cmd.env("ERL_EPMD_PORT", &port)
                .args(["-name", &node.name, "-start_epmd", "false"])
                .args(["-erl_epmd_port", &port])
                .args(["-kernel", "inet_dist_use_interface"])
                .arg(format!("{{{a},{b},{c},{d}}}"));
            // ERL_EPMD_PORT: the node still tries to register with an
            // epmd (and goes on without one); pointing it at our own
            // port keeps it away from the machine's epmd on 4369.
        }
        if !self.debug {
            // Like `ejabberdctl foreground-quiet`: only critical messages
            // on the console; everything is in the log file anyway.
            cmd.args(["-ejabberd", "quiet", "true"]);
        }
        cmd
    }
}

/// Writes the Erlang cookie into the node's `$HOME` (the server's
/// directory), readable by its owner only (Erlang refuses it otherwise).
fn write_cookie(home: &Path, cookie: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = home.join(".erlang.cookie");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)
        .and_then(|mut f| f.write_all(cookie.as_bytes()))
        .map_err(|e| annotate(e, &format!("cannot write {}", path.display())))
}

/// Evaluates `expr` (an Erlang expression ending in `.`) in the node
/// through the command loop's `eval` and returns the result as `~w`
/// prints it. For the cluster's queries: the crate writes every
/// expression itself.
pub(crate) fn cluster_eval(
    control: &mut Control,
    expr: &str,
    timeout: Duration,
) -> io::Result<String> {
    let hex: String = expr.bytes().map(|b| format!("{b:02x}")).collect();
    request_within(control, "eval", &[&hex], timeout)
}

/// Reads the server's stdout: command replies go to the returned channel,
/// everything else to `console`.
pub(crate) fn spawn_stdout_reader(
    stdout: ChildStdout,
    mut console: File,
) -> io::Result<Receiver<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("ejabberd-stdout".into())
        .spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                match text.strip_prefix(REPLY_PREFIX) {
                    // Nobody waiting any more (server stopped) is fine.
                    Some(reply) => drop(tx.send(reply.trim_end().to_string())),
                    None => drop(console.write_all(&line)),
                }
            }
        })
        .map_err(|e| annotate(e, "cannot spawn the ejabberd stdout reader"))?;
    Ok(rx)
}

/// Registers `name@domain` through the command loop.
pub(crate) fn create_account(
    control: &mut Control,
    name: &str,
    password: &str,
    domain: &str,
) -> io::Result<()> {
    match request(control, "register", &[name, domain, password])?.as_str() {
        "ok" => Ok(()),
        "{error,exists}" => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("the account {name}@{domain} already exists"),
        )),
        other => Err(io::Error::other(format!(
            "ejabberd refused to register {name}@{domain}: {other}"
        ))),
    }
}

/// The Erlang resolver's configuration (`ERL_INETRC`). Without s2s: names
/// from our own table only, never DNS. With s2s: a `resolv.conf` of ours
/// naming the test's DNS server alone (ejabberd resolves peers with
/// `inet_res`, which asks DNS for SRV and A records and reads no hosts
/// file), and an empty hosts file of ours: the machine's `/etc/resolv.conf`
/// and `/etc/hosts` would otherwise be read and polled. (A `nameserver`
/// entry here would not do: reloading the resolv.conf file replaces it.)
fn inetrc(cfg: &ServerConfig<'_>, root: &std::path::Path) -> io::Result<String> {
    let mut rc = String::from("{host, {127,0,0,1}, [\"localhost\"]}.\n");
    match cfg.s2s {
        None => rc.insert_str(0, "{lookup, [file]}.\n"),
        Some(s2s) => {
            let (resolv_conf, hosts) = (root.join("resolv.conf"), root.join("hosts"));
            write_file(
                &resolv_conf,
                &format!(
                    "# Written by xmpp-test-server: only the test's DNS server.\n\
                     nameserver {}\n",
                    s2s.nameserver
                ),
            )?;
            write_file(&hosts, "")?;
            let _ = write!(
                rc,
                "{{lookup, [file, dns]}}.\n\
                 {{resolv_conf, {}}}.\n\
                 {{hosts_file, {}}}.\n\
                 {{timeout, 1000}}.\n\
                 {{retry, 2}}.\n",
                erlang_string(&resolv_conf.to_string_lossy()),
                erlang_string(&hosts.to_string_lossy()),
            );
        }
    }
    Ok(rc)
}

/// Asks the server to stop (see the `stop` command of [`CONTROL_LOOP`])
/// without waiting for an answer; the caller waits for the process to
/// exit. Returns whether the request could be sent.
pub(crate) fn request_stop(control: &mut Control) -> bool {
    control
        .stdin
        .write_all(format!("stop {}\n", unique_id()).as_bytes())
        .and_then(|()| control.stdin.flush())
        .is_ok()
}

/// Sends one command and waits for its reply (skipping stale replies to
/// earlier commands that timed out).
fn request(control: &mut Control, cmd: &str, args: &[&str]) -> io::Result<String> {
    request_within(control, cmd, args, COMMAND_TIMEOUT)
}

/// [`request`] with its own time limit (joining a cluster restarts
/// ejabberd and takes longer than the other commands).
fn request_within(
    control: &mut Control,
    cmd: &str,
    args: &[&str],
    timeout: Duration,
) -> io::Result<String> {
    let replies = control
        .replies
        .as_ref()
        .ok_or_else(|| io::Error::other("no command channel to ejabberd"))?;
    let id = unique_id().to_string();
    let line = format!("{cmd} {id} {}\n", args.join(" "));
    control
        .stdin
        .write_all(line.as_bytes())
        .and_then(|()| control.stdin.flush())
        .map_err(|e| annotate(e, "cannot send a command to ejabberd"))?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match replies.recv_timeout(left) {
            Ok(reply) => {
                if let Some(result) = reply.strip_prefix(&id).and_then(|r| r.strip_prefix(' ')) {
                    return Ok(result.to_string());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("ejabberd did not answer {cmd:?} within {timeout:?}"),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "ejabberd exited while handling a command",
                ))
            }
        }
    }
}

/// `erl` and the `ERL_LIBS` directory, read from Debian's `ejabberdctl`
/// (which hard-codes both for the installed architecture).
fn erlang_paths() -> io::Result<(PathBuf, String)> {
    let ctl = find_program("ejabberdctl")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "ejabberdctl not found"))?;
    let script = std::fs::read_to_string(&ctl)
        .map_err(|e| annotate(e, &format!("cannot read {}", ctl.display())))?;
    let assignment = |var: &str| {
        script.lines().find_map(|l| {
            let value = l.trim().strip_prefix(var)?.strip_prefix('=')?;
            Some(value.trim_matches(|c| c == '"' || c == '\'').to_string())
        })
    };
    let erl = assignment("ERL")
        .map(PathBuf::from)
        .or_else(|| find_program("erl"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "erl not found"))?;
    let erl_libs = assignment("ERL_LIBS").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no ERL_LIBS=... line in {}", ctl.display()),
        )
    })?;
    Ok((erl, erl_libs))
}

/// The whole `ejabberd.yml`.
fn config_text(cfg: &ServerConfig<'_>, port: u16) -> String {
    let tls = cfg.c2s_tls && cfg.certs.is_some();
    let mut c = String::new();
    let _ = write!(
        c,
        r#"# Written by xmpp-test-server: a throwaway loopback test server.
hosts:
  - {domain}
loglevel: {level}
log_rotate_count: 0
# Plain storage: any SASL mechanism works.
auth_method: internal
auth_password_format: plain
# Never fetch certificates from the internet.
acme:
  auto: false
"#,
        domain = yaml_string(cfg.domain),
        level = if cfg.debug { "debug" } else { "info" },
    );
    if cfg.s2s.is_some() {
        // Dialback (mod_s2s_dialback) over plaintext on loopback. A failed
        // connection is retried after s2s_max_retry_delay at most
        // (default 300 s: a peer that restarts would be unreachable for
        // minutes); DNS answers at once or not at all.
        c.push_str(
            "s2s_access: all\n\
             s2s_use_starttls: false\n\
             s2s_max_retry_delay: 1\n\
             s2s_dns_timeout: 2\n\
             s2s_dns_retries: 1\n\
             outgoing_s2s_families: [ipv4]\n",
        );
    } else {
        c.push_str("# Never talk s2s.\ns2s_access: none\n");
    }
    if let Some(certs) = cfg.certs {
        let _ = write!(
            c,
            "certfiles:\n  - {}\n  - {}\n",
            yaml_string(&certs.cert.to_string_lossy()),
            yaml_string(&certs.key.to_string_lossy())
        );
    }
    if let Some(rate) = cfg.rate {
        let _ = write!(
            c,
            "shaper:\n  xts_c2s: {}\nshaper_rules:\n  c2s_shaper: xts_c2s\n",
            rate.bytes_per_second
        );
    }
    // No shaper on the listener unless asked for: Debian's example config
    // shapes c2s to 3000 B/s.
    let _ = write!(
        c,
        r#"listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: all
    starttls: {tls}
    starttls_required: {tls}
"#
    );
    if cfg.rate.is_some() {
        c.push_str("    shaper: c2s_shaper\n");
    }
    if let Some(s2s) = cfg.s2s {
        let _ = write!(
            c,
            "  -\n    port: {}\n    ip: \"127.0.0.1\"\n    module: ejabberd_s2s_in\n    \
             max_stanza_size: 524288\n",
            s2s.port
        );
    }
    c.push_str(
        r#"modules:
  mod_caps: {}
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_stream_mgmt: {}
"#,
    );
    if cfg.s2s.is_some() {
        c.push_str("  mod_s2s_dialback: {}\n");
    }
    if cfg.muc_archive || cfg.user_archive {
        c.push_str("  mod_mam:\n    default: always\n");
    }
    let _ = write!(
        c,
        r#"  mod_muc:
    access: all
    access_create: all
    access_persistent: all
    history_size: 0
    default_room_options:
      persistent: false
      mam: {}
"#,
        cfg.muc_archive
    );
    c
}

/// A double-quoted YAML scalar.
fn yaml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An Erlang string literal (for `-mnesia dir`).
fn erlang_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
