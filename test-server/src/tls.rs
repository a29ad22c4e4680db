//! A throwaway CA and server certificate, made with the `openssl` CLI.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::files::{create_dir, write_file};
use crate::util::run_checked;
use crate::{DOMAIN, MUC_DOMAIN};

/// PEM files of a generated certificate set.
pub(crate) struct Certs {
    /// The CA certificate that clients should trust.
    pub(crate) ca: PathBuf,
    /// The server certificate (for `localhost` and `conference.localhost`).
    pub(crate) cert: PathBuf,
    /// The server certificate's private key (unencrypted).
    pub(crate) key: PathBuf,
}

/// Creates `dir` and generates a CA plus a CA-signed server certificate in
/// it. P-256 keys keep this fast (a few tens of milliseconds).
pub(crate) fn generate(dir: &Path) -> io::Result<Certs> {
    crate::install::ensure_package("openssl", None, || {
        crate::install::find_program("openssl").is_some()
    })?;
    let openssl = crate::install::find_program("openssl")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "openssl not found"))?;
    create_dir(dir)?;
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("localhost.key");
    let csr = dir.join("localhost.csr");
    let cert = dir.join("localhost.crt");
    let ext = dir.join("localhost.ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];

    run_checked(
        Command::new(&openssl)
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca)
            .args([
                "-days",
                "3650",
                "-subj",
                "/CN=xmpp-test-server throwaway CA",
            ])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    )?;
    run_checked(
        Command::new(&openssl)
            .args(["req", "-new"])
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("/CN={DOMAIN}")]),
    )?;
    // rustls/webpki insist on a subjectAltName and on a CA:FALSE leaf.
    write_file(
        &ext,
        &format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:{DOMAIN},DNS:{MUC_DOMAIN}\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n"
        ),
    )?;
    let serial = format!("0x{}", crate::accounts::random_password()?);
    run_checked(
        Command::new(&openssl)
            .args(["x509", "-req", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .args(["-set_serial", &serial, "-days", "3650", "-out"])
            .arg(&cert)
            .arg("-extfile")
            .arg(&ext),
    )?;
    Ok(Certs { ca, cert, key })
}
