//! The parser of [`Options::c2s_rate_limit`](crate::Options::c2s_rate_limit):
//! one rate, in the syntax each server expects.

use std::io;

/// A parsed [`Options::c2s_rate_limit`](crate::Options::c2s_rate_limit).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// The rate in Prosody's syntax (`"10kb/s"`).
    pub(crate) prosody: String,
    /// Bytes per second with binary units, for ejabberd's shaper.
    pub(crate) bytes_per_second: u64,
}

impl RateLimit {
    pub(crate) fn parse(s: &str) -> io::Result<RateLimit> {
        let invalid = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid c2s_rate_limit {s:?}: expected e.g. \"10kb/s\" or \"3000\""),
            )
        };
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = t[..digits].parse().map_err(|_| invalid())?;
        let rest = t[digits..].trim_start();
        // (binary multiplier for ejabberd, Prosody's decimal exponent)
        let (multiplier, unit_exponent): (u64, Option<u32>) = if rest.is_empty() {
            (1, None)
        } else {
            let unit = rest
                .strip_suffix("/s")
                .ok_or_else(invalid)?
                .to_ascii_lowercase();
            match unit.as_str() {
                "b" => (1, None),
                "kb" => (1 << 10, Some(3)),
                "mb" => (1 << 20, Some(6)),
                "gb" => (1 << 30, Some(9)),
                _ => return Err(invalid()),
            }
        };
        let bytes_per_second = n
            .checked_mul(multiplier)
            .filter(|&b| b > 0)
            .ok_or_else(invalid)?;
        let prosody = match unit_exponent {
            // Decimal units keep Prosody's own meaning (Debian's stock
            // "10kb/s" is 10000 B/s there).
            Some(_) => t.to_string(),
            // Prosody's parser multiplies the quantity by 10 for the unit
            // "b" (its exponent table has `b = 1`), so exact bytes per
            // second are written as tens of bytes.
            None => format!("{}b/s", bytes_per_second.div_ceil(10)),
        };
        Ok(RateLimit {
            prosody,
            bytes_per_second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        let r = RateLimit::parse("10kb/s").unwrap();
        assert_eq!(r.bytes_per_second, 10240);
        assert_eq!(r.prosody, "10kb/s");
        let r = RateLimit::parse("3000").unwrap();
        assert_eq!(r.bytes_per_second, 3000);
        assert_eq!(r.prosody, "300b/s");
        let r = RateLimit::parse("505 b/s").unwrap();
        assert_eq!(r.bytes_per_second, 505);
        assert_eq!(r.prosody, "51b/s");
        let r = RateLimit::parse("1MB/s").unwrap();
        assert_eq!(r.bytes_per_second, 1 << 20);
        assert_eq!(r.prosody, "1MB/s");
        for bad in [
            "",
            "kb/s",
            "10kb",
            "10 parsecs/s",
            "0",
            "-3",
            "99999999999999999999",
        ] {
            assert!(RateLimit::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
