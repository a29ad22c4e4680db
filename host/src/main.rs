//! The `webxdc-host` command: serve a webxdc app to a browser, connected to
//! an XMPP chat.
//!
//! ```text
//! webxdc-host APP.xdc                    a throwaway local Prosody, two users in one
//!                                        room: prints one URL per user
//! webxdc-host APP.xdc --jid J --password P --room R [--server HOST:PORT]
//!                     [--instance ID] [--plaintext]
//!                                        one user on a real server
//! webxdc-host pack DIR OUT.xdc           pack an app directory into a .xdc file
//! ```
//!
//! `APP.xdc` may also be a directory holding the app's files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use webxdc_host::transport::xmpp::XmppTransport;
use webxdc_host::{App, Origin};
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client, Config};

const USAGE: &str = "\
usage:
  webxdc-host APP.xdc|APP-DIR
      Starts a throwaway Prosody on 127.0.0.1 with two users in one room and
      prints two URLs: open each in its own browser window (or profile).
  webxdc-host APP.xdc|APP-DIR --jid USER@DOMAIN --password PASSWORD --room ROOM@SERVICE
              [--server HOST:PORT] [--instance ID] [--plaintext]
      Serves one user on a real XMPP server (STARTTLS; --plaintext only for a
      server on a loopback address). Everyone who opens the app with the same
      room and --instance meets in it.
  webxdc-host pack APP-DIR OUT.xdc
      Checks the app in APP-DIR and packs it into a .xdc file.";

/// What the command line asks for.
enum Command {
    Demo {
        app: PathBuf,
        instance: Option<String>,
    },
    Real {
        app: PathBuf,
        jid: String,
        password: String,
        room: String,
        server: Option<String>,
        instance: Option<String>,
        plaintext: bool,
    },
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
    let mut plaintext = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
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
    let app = app.ok_or("which app? give a .xdc file or an app directory")?;
    match (jid, password, room) {
        (None, None, None) if server.is_none() && !plaintext => Ok(Command::Demo { app, instance }),
        (Some(jid), Some(password), Some(room)) => Ok(Command::Real {
            app,
            jid,
            password,
            room,
            server,
            instance,
            plaintext,
        }),
        _ => Err("a real server needs all of --jid, --password and --room".into()),
    }
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
        Command::Real {
            app,
            jid,
            password,
            room,
            server,
            instance,
            plaintext,
        } => real(app, jid, password, room, server, instance, plaintext).await,
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

fn load(path: &std::path::Path) -> Result<Arc<App>, String> {
    let app =
        App::load(path).map_err(|e| format!("cannot load the app {}: {e}", path.display()))?;
    eprintln!(
        "loaded the app \"{}\" ({} files)",
        app.name(),
        app.paths().len()
    );
    Ok(Arc::new(app))
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

async fn demo(path: PathBuf, instance: Option<String>) -> Result<(), String> {
    let app = load(&path)?;
    let instance = instance.unwrap_or_else(|| default_instance(&app));
    eprintln!("starting a throwaway Prosody on 127.0.0.1 (it stops when this command ends)…");
    eprintln!("(the local server is unencrypted: fine on loopback, never over a network)");
    let server = tokio::task::spawn_blocking(|| {
        let mut options = xmpp_test_server::Options::prosody();
        options.muc_archive = true; // status updates are kept by the room's archive
        xmpp_test_server::TestServer::start(options)
    })
    .await
    .map_err(|e| format!("the server start was interrupted: {e}"))?
    .map_err(|e| format!("cannot start Prosody: {e}"))?;
    let room = format!("webxdc-demo@{}", server.muc_domain());
    let mut origins = Vec::new();
    let mut clients = Vec::new();
    for user in ["alice", "bob"] {
        let (jid, password) = server
            .account(user)
            .map_err(|e| format!("cannot create the account {user}: {e}"))?;
        let (client, origin) = connect_and_serve(
            &app,
            &jid,
            &password,
            &room,
            Err(server.c2s_addr()),
            &instance,
        )
        .await?;
        clients.push(client);
        origins.push((user, origin));
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
    for client in clients {
        client.shutdown().await;
    }
    drop(server);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn real(
    path: PathBuf,
    jid: String,
    password: String,
    room: String,
    server: Option<String>,
    instance: Option<String>,
    plaintext: bool,
) -> Result<(), String> {
    let app = load(&path)?;
    let instance = instance.unwrap_or_else(|| default_instance(&app));
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
    let (client, origin) = connect_and_serve(&app, &jid, &password, &room, how, &instance).await?;
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

/// Logs in, enters the room and serves the app for that user. `how`:
/// `Ok(server)` for STARTTLS (`None`: found by DNS), `Err(addr)` for
/// plaintext on loopback.
async fn connect_and_serve(
    app: &Arc<App>,
    jid: &str,
    password: &str,
    room: &str,
    how: Result<Option<(String, u16)>, SocketAddr>,
    instance: &str,
) -> Result<(Client, Origin), String> {
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
    let transport = Arc::new(XmppTransport::new(client.clone(), chat));
    let origin = Origin::serve(app.clone(), transport, instance)
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    Ok((client, origin))
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
