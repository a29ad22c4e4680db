//! Account names and passwords.

use std::fs::File;
use std::io::{self, Read};

use crate::util::annotate;

/// Checks an account name and returns it lowered.
pub(crate) fn validate_username(name: &str) -> io::Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid account name {name:?}: use 1-64 of [A-Za-z0-9._-]"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// 24 hex digits from the kernel's CSPRNG (only ever ASCII, so it needs no
/// escaping in config files, Erlang terms or SASL).
pub(crate) fn random_password() -> io::Result<String> {
    let mut bytes = [0u8; 12];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| annotate(e, "cannot read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(validate_username("Alice.B-c_1").unwrap(), "alice.b-c_1");
        for bad in ["", "a b", "a@b", "ä", "a/b", &"x".repeat(65)] {
            assert!(
                validate_username(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn passwords_differ() {
        let a = random_password().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, random_password().unwrap());
    }
}
