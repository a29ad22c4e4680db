//! The `@webxdc/realtime` helper from the npm registry, for the browser
//! test of an app built on it: `npm pack` fetches the published tarball
//! (once per test binary), `tar` unpacks it, and the app directory
//! `host/apps/realtime-helper/` is completed with the package's module in a
//! temp dir. The package's code is not in the repository; a machine
//! without npm or without the registry fails the test with a message that
//! says so, it does not skip it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use webxdc_host::App;

/// The version the app was written against (its API and its 126000-byte
/// chunks).
pub const REALTIME_PACKAGE: &str = "@webxdc/realtime@0.2.2";
/// The tarball's integrity as the registry publishes it: the code that
/// runs in the browser is the code that was read, not whatever the name
/// points to one day.
pub const REALTIME_INTEGRITY: &str =
    "sha512-BXMDWvITIcWIPVq8DXY69DMrvAQROpxpgO0OyouimE3HM+BxNZ0KP0WAi/hFWiMqImip4B8r3WHleer3hEwYag==";
/// `npm pack` of a 6 kB package: two minutes means the registry is not
/// answering.
const NPM_TIMEOUT: Duration = Duration::from_secs(120);

/// The unpacked package: its directory (kept for the whole test binary)
/// and the path of its ES module.
struct Package {
    _dir: tempfile::TempDir,
    module: PathBuf,
}

/// The helper's ES module file (`dist/realtime.js` of the package),
/// fetched once per test binary. Panics with the reason if it cannot be
/// had; a failure is kept, so later tests fail at once with the same
/// words instead of waiting for npm again.
pub fn realtime_module() -> &'static Path {
    static PACKAGE: OnceLock<Result<Package, String>> = OnceLock::new();
    match PACKAGE.get_or_init(fetch_realtime) {
        Ok(p) => &p.module,
        Err(e) => panic!(
            "the @webxdc/realtime test needs npm and the npm registry \
             (CI installs the package with `npm pack {REALTIME_PACKAGE}`): {e}"
        ),
    }
}

/// `host/apps/realtime-helper/` plus the package's module as
/// `realtime.js`, loaded as an app.
pub fn realtime_helper_app() -> Arc<App> {
    let module = realtime_module();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("apps/realtime-helper");
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&src).expect("apps/realtime-helper") {
        let entry = entry.expect("a directory entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy an app file");
    }
    std::fs::copy(module, dir.path().join("realtime.js")).expect("copy realtime.js");
    // The app is held in memory once loaded: the temp dir may go.
    Arc::new(App::load(dir.path()).unwrap_or_else(|e| panic!("apps/realtime-helper: {e}")))
}

fn fetch_realtime() -> Result<Package, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let out = run(
        Command::new("npm")
            .args(["pack", REALTIME_PACKAGE, "--json", "--ignore-scripts"])
            .arg("--pack-destination")
            .arg(dir.path())
            .current_dir(dir.path()),
        NPM_TIMEOUT,
    )?;
    // npm's --json answer: [{"filename", "integrity", ...}].
    let report: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| format!("npm pack printed no JSON report ({e}): {out}"))?;
    let filename = report[0]["filename"]
        .as_str()
        .ok_or_else(|| format!("npm pack named no tarball: {out}"))?;
    let integrity = report[0]["integrity"].as_str().unwrap_or("");
    if integrity != REALTIME_INTEGRITY {
        return Err(format!(
            "{REALTIME_PACKAGE} has integrity {integrity:?}, expected {REALTIME_INTEGRITY:?}"
        ));
    }
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(dir.path().join(filename))
            .arg("-C")
            .arg(dir.path()),
        Duration::from_secs(30),
    )?;
    // The module the package exports for `import` (not a guessed path).
    let package_dir = dir.path().join("package");
    let manifest = std::fs::read_to_string(package_dir.join("package.json"))
        .map_err(|e| format!("the tarball has no package/package.json: {e}"))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&manifest).map_err(|e| format!("package.json is not JSON: {e}"))?;
    let entry = manifest["exports"]["."]["import"]
        .as_str()
        .ok_or("package.json exports no module for import")?;
    let module = package_dir.join(entry);
    if !module.is_file() {
        return Err(format!("the exported module {entry} is not in the tarball"));
    }
    Ok(Package { _dir: dir, module })
}

/// Runs `cmd` to its end within `timeout` (it is killed after); its
/// stdout if it succeeded.
fn run(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    // Read the pipes on threads: a child that fills one would block and
    // never exit.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                // Polling a child process (std has no wait with a timeout).
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({status}): {}{}",
            err.trim(),
            out.trim()
        ))
    }
}
