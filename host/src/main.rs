//! The `webxdc-host` command: serve a webxdc app to a browser, connected to
//! an XMPP chat.
//!
//! ```text
//! webxdc-host APP.xdc                    a throwaway local Prosody with HTTP upload,
//!                                        two users in one room: alice shares the app,
//!                                        bob opens her share; prints one URL per user
//! webxdc-host APP.xdc --jid J --password P --room R [--server HOST:PORT]
//!                     [--instance ID | --share] [--plaintext]
//!                                        one user on a real server
//! webxdc-host [APP.xdc] --jid J --password P --room R --open [THREAD] ...
//!                                        open an app someone shared in the room
//! webxdc-host pack DIR OUT.xdc           pack an app directory into a .xdc file
//! ```
//!
//! `APP.xdc` may also be a directory holding the app's files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use webxdc_host::share::{self, ShareError, SharedApp};
use webxdc_host::transport::xmpp::XmppTransport;
use webxdc_host::{App, Limits, Origin};
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client, ClientEvent, Config, EngineEvent, Events, GroupChat};

const USAGE: &str = "\
usage:
  webxdc-host APP.xdc|APP-DIR
      Starts a throwaway Prosody on 127.0.0.1 (with HTTP upload) with two
      users in one room: alice shares the app into the room, bob's host
      opens her share, and both serve that instance. Prints two URLs: open
      each in its own browser window (or profile).
  webxdc-host APP.xdc|APP-DIR --instance ID
      The same, without sharing: both serve the app as instance ID.
  webxdc-host APP.xdc|APP-DIR --jid USER@DOMAIN --password PASSWORD --room ROOM@SERVICE
              [--server HOST:PORT] [--instance ID | --share] [--plaintext]
      Serves one user on a real XMPP server (STARTTLS; --plaintext only for a
      server on a loopback address). Everyone who opens the app with the same
      room and --instance meets in it. --share uploads the app (HTTP upload,
      XEP-0363) and shares it into the room as a new instance, as Cheogram
      does; without upload on the server it says so and serves --instance.
  webxdc-host [APP.xdc|APP-DIR] --jid USER@DOMAIN --password PASSWORD --room ROOM@SERVICE
              --open [THREAD] [--server HOST:PORT] [--plaintext]
      Lists the apps shared in the room, downloads the newest one (or the
      one whose instance is THREAD) and serves it in that instance. APP,
      when given (before --open), is served as --instance if there is
      nothing to open.
      Uploads are https:// (certificate checked against the system's roots;
      plain http:// only to a loopback address), not encrypted (aesgcm://).
  webxdc-host pack APP-DIR OUT.xdc
      Checks the app in APP-DIR and packs it into a .xdc file.";

/// How long the command waits for a share to come back from the room.
const SHARE_WAIT: Duration = Duration::from_secs(30);

/// Which instance a real-server run serves.
#[derive(Debug, PartialEq)]
enum Mode {
    /// `--instance ID` or the default instance.
    Instance,
    /// `--share`: upload and share the app, serve the new instance.
    Share,
    /// `--open [THREAD]`: open an app shared in the room.
    Open(Option<String>),
}

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Demo {
        app: PathBuf,
        instance: Option<String>,
    },
    Real(RealRun),
    Pack {
        dir: PathBuf,
        out: PathBuf,
    },
}

fn parse(args: Vec<String>) -> Result<Command, String> {
    if args.first().map(String::as_str) == Some("pack") {
        return match &args[1..] {
            [dir, out] => Ok(Command::Pack {
                dir: dir.into(),
                out: out.into(),
            }),
            _ => Err("pack takes two arguments: the app's directory and the .xdc to write".into()),
        };
    }
    let mut app = None;
    let (mut jid, mut password, mut room, mut server, mut instance) =
        (None, None, None, None, None);
    let (mut plaintext, mut share, mut open) = (false, false, None);
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--open" => {
                // An optional THREAD: the next argument unless it is an option.
                let thread = it.next_if(|next| !next.starts_with('-'));
                open = Some(thread);
                continue;
            }
            "--share" => {
                share = true;
                continue;
            }
            _ => {}
        }
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--jid" => jid = Some(value("--jid")?),
            "--password" => password = Some(value("--password")?),
            "--room" => room = Some(value("--room")?),
            "--server" => server = Some(value("--server")?),
            "--instance" => instance = Some(value("--instance")?),
            "--plaintext" => plaintext = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ if app.is_some() => return Err(format!("unexpected argument {arg}")),
            _ => app = Some(PathBuf::from(arg)),
        }
    }
    let mode = match (share, open) {
        (true, Some(_)) => return Err("--share and --open do not go together".into()),
        (true, None) => Mode::Share,
        (false, Some(thread)) => Mode::Open(thread),
        (false, None) => Mode::Instance,
    };
    // Bad values are refused here, naming the option, before any app is
    // loaded or server started.
    if let Some(i) = &instance {
        check_thread("--instance", i)?;
    }
    if let Mode::Open(Some(t)) = &mode {
        check_thread("--open", t)?;
    }
    if matches!(mode, Mode::Open(Some(_))) && instance.is_some() {
        return Err("--open THREAD and --instance both name the instance: give one".into());
    }
    if mode == Mode::Share && app.is_none() {
        return Err("--share needs the app to share: give a .xdc file or an app directory".into());
    }
    let which = "which app? give a .xdc file or an app directory";
    match (jid, password, room) {
        (None, None, None) if server.is_none() && !plaintext => {
            if mode != Mode::Instance {
                return Err(
                    "--share and --open need a real server (--jid, --password and --room); \
                     without them the throwaway server's alice shares the app by herself"
                        .into(),
                );
            }
            Ok(Command::Demo {
                app: app.ok_or(which)?,
                instance,
            })
        }
        (Some(jid), Some(password), Some(room)) => {
            check_jid("--jid", &jid)?;
            check_jid("--room", &room)?;
            if mode == Mode::Instance && app.is_none() {
                return Err(which.into());
            }
            Ok(Command::Real(RealRun {
                app,
                jid,
                password,
                room,
                server,
                instance,
                plaintext,
                mode,
            }))
        }
        _ if app.is_none() => Err(which.into()),
        _ => Err("a real server needs all of --jid, --password and --room".into()),
    }
}

/// `value` of `option` as a bare JID with a local part (`user@domain`,
/// `room@service`), or a message naming both.
fn check_jid(option: &str, value: &str) -> Result<(), String> {
    match BareJid::new(value) {
        Ok(j) if j.node().is_some() => Ok(()),
        Ok(_) => Err(format!(
            "{option} {value}: a domain alone; give NAME@DOMAIN"
        )),
        Err(e) => Err(format!("{option} {value} is not a valid bare JID: {e}")),
    }
}

/// `value` of `option` as an app instance id (a thread), or a message
/// naming both (a long value shortened).
fn check_thread(option: &str, value: &str) -> Result<(), String> {
    webxdc_realtime_xmpp::wire::validate_thread(value).map_err(|e| {
        let shown: String = value.chars().take(40).collect();
        let more = if shown.len() < value.len() { "…" } else { "" };
        format!("{option} '{}{more}': {e}", shown.escape_debug())
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The library warns about each plaintext login; this command says
        // it once, in its own words, when it is so.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,webxdc_realtime_xmpp::client=error")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let command = match parse(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("webxdc-host: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Pack { dir, out } => pack(dir, out),
        Command::Demo { app, instance } => demo(app, instance).await,
        Command::Real(run) => real(run).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webxdc-host: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pack(dir: PathBuf, out: PathBuf) -> Result<(), String> {
    let app = webxdc_host::loader::pack_dir(&dir, &out)
        .map_err(|e| format!("cannot pack {}: {e}", dir.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "packed \"{}\" ({} files) into {} ({size} bytes)",
        app.name(),
        app.paths().len(),
        out.display()
    );
    Ok(())
}

fn load(path: &Path) -> Result<Arc<App>, String> {
    let app =
        App::load(path).map_err(|e| format!("cannot load the app {}: {e}", path.display()))?;
    eprintln!(
        "loaded the app \"{}\" ({} files)",
        app.name(),
        app.paths().len()
    );
    Ok(Arc::new(app))
}

/// The `.xdc` bytes to upload for the app at `path` and their file name:
/// a `.xdc` file as it is, a directory packed.
fn xdc_of(path: &Path, app: &App) -> Result<(Vec<u8>, String), String> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "app".to_owned());
    let name = format!("{stem}.xdc");
    if path.is_dir() {
        let bytes = webxdc_host::loader::pack(app)
            .map_err(|e| format!("cannot pack {}: {e}", path.display()))?;
        Ok((bytes, name))
    } else {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok((bytes, name))
    }
}

/// The instance id when none is given: the same for everyone who runs the
/// same app, so that they meet.
fn default_instance(app: &App) -> String {
    let name: String = app
        .name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("webxdc-host-{name}")
}

/// A share's file name and who shared it, for a person to read.
fn describe(frame: &webxdc_realtime_xmpp::SharedAppFrame) -> String {
    let name = frame.app.name.as_deref().unwrap_or("an app");
    let who = frame
        .from
        .resource()
        .map(|r| r.as_str().to_owned())
        .unwrap_or_else(|| frame.from.to_string());
    format!("{name} shared by {who} (instance {})", frame.app.thread)
}

async fn demo(path: PathBuf, instance: Option<String>) -> Result<(), String> {
    let app = load(&path)?;
    let sharing = instance.is_none();
    eprintln!("starting a throwaway Prosody on 127.0.0.1 (it stops when this command ends)…");
    eprintln!("(the local server is unencrypted: fine on loopback, never over a network)");
    let start = |http_upload: bool| {
        tokio::task::spawn_blocking(move || {
            let mut options = xmpp_test_server::Options::prosody();
            options.muc_archive = true; // status updates are kept by the room's archive
            options.http_upload = http_upload; // where alice uploads the app she shares
            xmpp_test_server::TestServer::start(options)
        })
    };
    let started = start(sharing)
        .await
        .map_err(|e| format!("the server start was interrupted: {e}"))?;
    let (server, sharing) = match started {
        Ok(server) => (server, sharing),
        Err(e) if sharing => {
            eprintln!(
                "Prosody would not start with HTTP upload ({e}): starting it without, \
                 so the app is not shared and both users run it from this copy"
            );
            let server = start(false)
                .await
                .map_err(|e| format!("the server start was interrupted: {e}"))?
                .map_err(|e| format!("cannot start Prosody: {e}"))?;
            (server, false)
        }
        Err(e) => return Err(format!("cannot start Prosody: {e}")),
    };
    let room = format!("webxdc-demo@{}", server.muc_domain());
    let mut users = Vec::new();
    for user in ["alice", "bob"] {
        let (jid, password) = server
            .account(user)
            .map_err(|e| format!("cannot create the account {user}: {e}"))?;
        let (client, chat) = connect(&jid, &password, &room, Err(server.c2s_addr())).await?;
        users.push((user, client, chat));
    }
    let (instance, apps) = if sharing {
        let (alice, bob) = (&users[0], &users[1]);
        let (bytes, name) = xdc_of(&path, &app)?;
        // Bob listens before alice shares: he sees her share as it arrives.
        let mut bob_events = bob.1.events();
        eprintln!(
            "alice uploads {name} ({} bytes) to the server's upload service and shares it into the room…",
            bytes.len()
        );
        let shared = share::share(&alice.1, &alice.2, &bytes, &name)
            .await
            .map_err(|e| format!("alice cannot share the app: {e}"))?;
        println!(
            "alice shared \"{}\" into the room {room}: it is stored at {}",
            app.name(),
            shared.url
        );
        println!(
            "  and its thread {} is the new instance (the id Cheogram would use too).",
            shared.thread
        );
        let frame = wait_for_share(&mut bob_events, &shared.thread)
            .await
            .map_err(|e| format!("bob's host did not see alice's share: {e}"))?;
        let opened = share::open(&frame.app, Limits::default())
            .await
            .map_err(|e| format!("bob's host cannot open alice's share: {e}"))?;
        println!(
            "bob's host saw the share in the room, downloaded it (its SHA-256 matches) and opened \"{}\" ({} files).",
            opened.name(),
            opened.paths().len()
        );
        (shared.thread, vec![app.clone(), Arc::new(opened)])
    } else {
        let instance = instance.unwrap_or_else(|| default_instance(&app));
        (instance, vec![app.clone(), app.clone()])
    };
    let mut origins = Vec::new();
    for ((user, client, chat), app) in users.iter().zip(&apps) {
        let origin = serve(app, client, chat, &instance).await?;
        origins.push((*user, origin));
    }
    println!(
        "\"{}\" is running as instance {instance} in room {room}.",
        app.name()
    );
    println!("Open each URL in its own browser window (each user is an origin of its own):");
    for (user, origin) in &origins {
        println!("  {user}: {}", origin.url());
    }
    println!("Press Ctrl-C to stop.");
    wait_for_ctrl_c().await;
    eprintln!("stopping…");
    for (_, origin) in origins {
        origin.stop().await;
    }
    for (_, client, _) in users {
        client.shutdown().await;
    }
    drop(server);
    Ok(())
}

/// The share of `thread` as it comes back from the room, within
/// [`SHARE_WAIT`].
async fn wait_for_share(
    events: &mut Events,
    thread: &str,
) -> Result<webxdc_realtime_xmpp::SharedAppFrame, String> {
    let wait = async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Room(EngineEvent::AppShared { frame, .. }))
                    if frame.app.thread == thread =>
                {
                    return Ok(*frame);
                }
                None | Some(ClientEvent::Closed) => return Err("the client stopped".to_owned()),
                _ => {}
            }
        }
    };
    tokio::time::timeout(SHARE_WAIT, wait)
        .await
        .map_err(|_| format!("no share came within {SHARE_WAIT:?}"))?
}

/// A real-server run, as the command line gives it.
#[derive(Debug)]
struct RealRun {
    app: Option<PathBuf>,
    jid: String,
    password: String,
    room: String,
    server: Option<String>,
    instance: Option<String>,
    plaintext: bool,
    mode: Mode,
}

async fn real(run: RealRun) -> Result<(), String> {
    let RealRun {
        app: path,
        jid,
        password,
        room,
        server,
        instance,
        plaintext,
        mode,
    } = run;
    // The local app, when given: loaded before logging in, so that a broken
    // app fails at once.
    let local = path.as_deref().map(load).transpose()?;
    let how = match (server, plaintext) {
        (Some(s), true) => Err(s
            .parse::<SocketAddr>()
            .map_err(|_| format!("--plaintext needs --server as IP:PORT, not {s}"))?),
        (None, true) => {
            return Err("--plaintext needs --server IP:PORT (a loopback address)".into())
        }
        (Some(s), false) => {
            let (host, port) = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or(format!("--server must be HOST:PORT, not {s}"))?;
            Ok(Some((host, port)))
        }
        (None, false) => Ok(None),
    };
    if how.is_err() {
        eprintln!("warning: --plaintext sends the password unencrypted (loopback only)");
    }
    let (client, chat) = connect(&jid, &password, &room, how).await?;
    // Without a share to serve: the local app as --instance (or the default).
    let fallback = |why: String| -> Result<(Arc<App>, String), String> {
        let app = local.clone().ok_or(why.clone())?;
        let instance = instance.clone().unwrap_or_else(|| default_instance(&app));
        eprintln!("{why}");
        eprintln!(
            "serving {} as instance {instance} instead (as --instance would)",
            app.name()
        );
        Ok((app, instance))
    };
    let (app, instance) = match mode {
        Mode::Instance => {
            let app = local
                .clone()
                .ok_or("which app? give a .xdc file or an app directory")?;
            let instance = instance.clone().unwrap_or_else(|| default_instance(&app));
            (app, instance)
        }
        Mode::Share => {
            let (app, path) = match (&local, &path) {
                (Some(app), Some(path)) => (app.clone(), path.clone()),
                _ => return Err("--share needs the app to share".into()),
            };
            let (bytes, name) = xdc_of(&path, &app)?;
            eprintln!(
                "uploading {name} ({} bytes) and sharing it into {room}…",
                bytes.len()
            );
            match share::share(&client, &chat, &bytes, &name).await {
                Ok(shared) => {
                    println!(
                        "shared \"{}\" into the room {room}: it is stored at {}, and its \
                         thread {} is the new instance. Cheogram users in the room see it as an \
                         app and meet you in it; other users of this host join with --open.",
                        app.name(),
                        shared.url,
                        shared.thread
                    );
                    (app, shared.thread)
                }
                Err(e @ (ShareError::NoUploadService | ShareError::Cleartext { .. })) => {
                    fallback(format!("cannot share the app: {e}"))?
                }
                Err(e) => return Err(format!("cannot share the app: {e}")),
            }
        }
        Mode::Open(thread) => {
            match open_from_room(&client, &chat, &room, thread.as_deref()).await {
                Ok((app, shared)) => (app, shared.thread),
                Err(why) => fallback(why)?,
            }
        }
    };
    let origin = serve(&app, &client, &chat, &instance).await?;
    println!(
        "\"{}\" is running as instance {instance} in room {room}.",
        app.name()
    );
    println!("Open {} in a browser.", origin.url());
    println!("Press Ctrl-C to stop.");
    wait_for_ctrl_c().await;
    eprintln!("stopping…");
    origin.stop().await;
    client.shutdown().await;
    Ok(())
}

/// Lists the apps shared in the room and opens the newest one, or the one
/// of `thread`. The error says why there is nothing to open.
async fn open_from_room(
    client: &Client,
    chat: &GroupChat,
    room: &str,
    thread: Option<&str>,
) -> Result<(Arc<App>, SharedApp), String> {
    eprintln!("looking for apps shared in {room}…");
    let shared = tokio::time::timeout(SHARE_WAIT, chat.shared_apps())
        .await
        .map_err(|_| format!("the room's archive did not answer within {SHARE_WAIT:?}"))?
        .map_err(|e| format!("cannot read the apps shared in {room}: {e}"))?;
    if shared.is_empty() {
        let upload = match tokio::time::timeout(SHARE_WAIT, client.upload_service()).await {
            Ok(Ok(None)) => {
                " (this server offers no HTTP upload, XEP-0363, so apps cannot be shared there)"
            }
            _ => "",
        };
        return Err(format!("no app has been shared in {room} yet{upload}"));
    }
    eprintln!("apps shared in {room} (oldest first):");
    for frame in &shared {
        eprintln!("  {}", describe(frame));
    }
    let frame = match thread {
        Some(t) => shared
            .iter()
            .rev()
            .find(|f| f.app.thread == t)
            .ok_or(format!("no app was shared in {room} with the instance {t}"))?,
        None => shared.last().ok_or("no app has been shared yet")?,
    };
    eprintln!(
        "opening {}: downloading {}…",
        describe(frame),
        frame.app.url
    );
    let app = share::open(&frame.app, Limits::default())
        .await
        .map_err(|e| format!("cannot open {}: {e}", describe(frame)))?;
    let checked = if frame.app.sha256.is_some() {
        " (its SHA-256 matches)"
    } else {
        " (the share gives no hash to check)"
    };
    eprintln!(
        "opened \"{}\" ({} files){checked}",
        app.name(),
        app.paths().len()
    );
    Ok((Arc::new(app), frame.app.clone()))
}

/// Logs in and enters the room. `how`: `Ok(server)` for STARTTLS (`None`:
/// found by DNS), `Err(addr)` for plaintext on loopback.
async fn connect(
    jid: &str,
    password: &str,
    room: &str,
    how: Result<Option<(String, u16)>, SocketAddr>,
) -> Result<(Client, GroupChat), String> {
    let bare = BareJid::new(jid).map_err(|e| format!("{jid} is not a valid JID: {e}"))?;
    let room_jid =
        BareJid::new(room).map_err(|e| format!("{room} is not a valid room JID: {e}"))?;
    let mut config = Config::new(bare, password);
    config = match how {
        Ok(Some((host, port))) => config.with_server(host, port),
        Ok(None) => config,
        Err(addr) => config.danger_plaintext_loopback_only(addr),
    };
    eprintln!("logging in as {jid}…");
    let client = Client::connect(config)
        .await
        .map_err(|e| format!("cannot log in as {jid}: {e}"))?;
    eprintln!("entering the room {room}…");
    let chat = client
        .group(room_jid)
        .await
        .map_err(|e| format!("cannot enter the room {room}: {e}"))?;
    Ok((client, chat))
}

/// Serves `app` as `instance` for the user of `client` in `chat`.
async fn serve(
    app: &Arc<App>,
    client: &Client,
    chat: &GroupChat,
    instance: &str,
) -> Result<Origin, String> {
    let transport = Arc::new(XmppTransport::new(client.clone(), chat.clone()));
    Origin::serve(app.clone(), transport, instance)
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))
}

/// Until Ctrl-C or SIGTERM: both stop the command cleanly (the throwaway
/// server and its files go too).
async fn wait_for_ctrl_c() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(terminated);
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                // No Ctrl-C handling here: wait for SIGTERM alone.
                (&mut terminated).await;
            }
        }
        _ = &mut terminated => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    const REAL: &str = "--jid a@x --password p --room r@muc.x";

    #[test]
    fn the_demo_and_the_old_real_form_parse_as_before() {
        assert!(matches!(
            parse(args("board.xdc")),
            Ok(Command::Demo { instance: None, .. })
        ));
        assert!(matches!(
            parse(args("board.xdc --instance i1")),
            Ok(Command::Demo { instance: Some(i), .. }) if i == "i1"
        ));
        assert!(matches!(
            parse(args(&format!("board.xdc {REAL}"))),
            Ok(Command::Real(RealRun {
                mode: Mode::Instance,
                app: Some(_),
                ..
            }))
        ));
        assert!(parse(args("")).is_err());
        assert!(parse(args(REAL)).is_err(), "no app, no --open");
    }

    #[test]
    fn share_and_open() {
        assert!(matches!(
            parse(args(&format!("board.xdc {REAL} --share"))),
            Ok(Command::Real(RealRun {
                mode: Mode::Share,
                ..
            }))
        ));
        assert!(parse(args(&format!("{REAL} --share"))).is_err());
        assert!(matches!(
            parse(args(&format!("{REAL} --open"))),
            Ok(Command::Real(RealRun {
                mode: Mode::Open(None),
                app: None,
                ..
            }))
        ));
        assert!(matches!(
            parse(args(&format!("--open t-1 {REAL}"))),
            Ok(Command::Real(RealRun { mode: Mode::Open(Some(t)), app: None, .. })) if t == "t-1"
        ));
        assert!(matches!(
            parse(args(&format!(
                "board.xdc {REAL} --open --plaintext --server 127.0.0.1:1"
            ))),
            Ok(Command::Real(RealRun {
                mode: Mode::Open(None),
                app: Some(_),
                plaintext: true,
                ..
            }))
        ));
        assert!(parse(args(&format!("board.xdc {REAL} --share --open"))).is_err());
        assert!(parse(args(&format!("{REAL} --open t --instance i"))).is_err());
        assert!(parse(args("board.xdc --share")).is_err(), "needs a server");
        assert!(parse(args("board.xdc --open")).is_err(), "needs a server");
    }

    /// Every bad JID or thread is refused by the parser, naming the option
    /// and the value.
    #[test]
    fn bad_jids_and_threads_name_the_option_and_the_value() {
        let refused = |line: &str, option: &str, value: &str| {
            let e = parse(args(line)).err().unwrap_or_default();
            assert!(
                e.contains(option) && e.contains(value),
                "{line}: {e:?} should name {option} and {value}"
            );
        };
        refused("board.xdc --jid x --password p --room r@m", "--jid", "x");
        refused(
            "board.xdc --jid a@x --password p --room muc.x",
            "--room",
            "muc.x",
        );
        refused(
            "board.xdc --jid a@x --password p --room r@m/nick",
            "--room",
            "r@m/nick",
        );
        refused(
            "board.xdc --jid a@b@c --password p --room r@m",
            "--jid",
            "a@b@c",
        );
        let long = "t".repeat(1025);
        refused(
            &format!("board.xdc --instance {long}"),
            "--instance",
            "1025 bytes",
        );
        refused(&format!("--open {long} {REAL}"), "--open", "1025 bytes");
        let mut with_control = args("board.xdc --instance");
        with_control.push("a\u{1}b".into());
        let e = parse(with_control).err().unwrap_or_default();
        assert!(e.contains("--instance") && e.contains("a\\u{1}b"), "{e:?}");
    }
}
