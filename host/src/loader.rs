//! Loading an app: a `.xdc` file (a zip archive) or a directory, checked
//! and unpacked into memory.
//!
//! The whole app is held in memory ([`App`]): the server answers only from
//! this map, so nothing outside the app can ever be served, whatever path a
//! page asks for. Loading is bounded: the number of files, each file's
//! unpacked size and the total are limited ([`Limits`]), and the sizes are
//! counted while inflating, because a zip's headers can lie about them.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};

/// Bounds on what an app may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes one file may unpack to.
    pub max_file: u64,
    /// The most bytes all files together may unpack to.
    pub max_total: u64,
    /// The most files (zip entries, directories included).
    pub max_files: usize,
}

impl Default for Limits {
    /// 64 MiB per file, 128 MiB in total, 10000 files: far above any real
    /// webxdc app (they are usually well under 1 MiB), far below what would
    /// hurt the machine.
    fn default() -> Self {
        Limits {
            max_file: 64 << 20,
            max_total: 128 << 20,
            max_files: 10_000,
        }
    }
}

/// Why an app could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What we tried to read.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The file is not a zip archive (a `.xdc` must be one).
    #[error("not a zip archive (a .xdc file must be one): {reason}")]
    NotAZip {
        /// What the zip reader said.
        reason: String,
    },
    /// The app has no `index.html` at its top level.
    #[error("the app has no index.html at its top level")]
    NoIndexHtml,
    /// An entry's path is absolute or climbs out of the app with `..`.
    #[error("the file {name:?} would lie outside the app (absolute path or '..')")]
    PathEscape {
        /// The entry's name as written in the archive (or on disk).
        name: String,
    },
    /// One file unpacks to more than [`Limits::max_file`] bytes.
    #[error("the file {name:?} unpacks to more than {limit} bytes (a zip bomb?)")]
    FileTooLarge {
        /// The entry's name.
        name: String,
        /// The limit it passed.
        limit: u64,
    },
    /// All files together unpack to more than [`Limits::max_total`] bytes.
    #[error("the app unpacks to more than {limit} bytes in total (a zip bomb?)")]
    TooLarge {
        /// The limit it passed.
        limit: u64,
    },
    /// The app has more than [`Limits::max_files`] files.
    #[error("the app has more than {limit} files")]
    TooManyFiles {
        /// The limit it passed.
        limit: usize,
    },
    /// The same path appears twice (the archive is ambiguous).
    #[error("the file {name:?} appears twice in the app")]
    Duplicate {
        /// The path.
        name: String,
    },
    /// A file cannot be unpacked: a compression method other than Store
    /// and Deflate, a bad checksum, a truncated archive, a symlink.
    #[error("the file {name:?} cannot be unpacked: {reason}")]
    BadEntry {
        /// The entry's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// `manifest.toml` is present but not readable.
    #[error("manifest.toml: {0}")]
    BadManifest(String),
}

/// A loaded app: its name and its files, by path relative to the app's
/// root (`index.html`, `js/app.js`, …, with `/` separators).
#[derive(Debug, Clone)]
pub struct App {
    name: String,
    files: HashMap<String, Vec<u8>>,
}

impl App {
    /// Loads `path`: a directory, or else a `.xdc` (zip) file, with the
    /// default [`Limits`].
    pub fn load(path: &Path) -> Result<App, LoadError> {
        Self::load_with(path, Limits::default())
    }

    /// Loads `path` with the given limits.
    pub fn load_with(path: &Path, limits: Limits) -> Result<App, LoadError> {
        let io_err = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        let fallback = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".to_owned());
        if meta.is_dir() {
            Self::from_dir(path, limits, &fallback)
        } else {
            // Refuse before reading a huge file into memory: a zip never
            // unpacks to less than its own size minus its headers.
            if meta.len() > limits.max_total.saturating_mul(2) {
                return Err(LoadError::TooLarge {
                    limit: limits.max_total,
                });
            }
            let bytes = fs::read(path).map_err(io_err)?;
            Self::from_xdc_bytes(&bytes, limits, &fallback)
        }
    }

    /// Loads an app from the bytes of a `.xdc` file. `fallback_name` is
    /// the app's name when its manifest gives none.
    pub fn from_xdc_bytes(
        bytes: &[u8],
        limits: Limits,
        fallback_name: &str,
    ) -> Result<App, LoadError> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| LoadError::NotAZip {
            reason: e.to_string(),
        })?;
        if zip.len() > limits.max_files {
            return Err(LoadError::TooManyFiles {
                limit: limits.max_files,
            });
        }
        let mut files = Files::new(limits);
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| LoadError::BadEntry {
                name: format!("#{i}"),
                reason: e.to_string(),
            })?;
            let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
            let Some(path) = clean_path(&raw)? else {
                continue; // the root itself
            };
            if entry.is_dir() {
                continue;
            }
            if entry.is_symlink() {
                return Err(LoadError::BadEntry {
                    name: raw,
                    reason: "symbolic links are not allowed in an app".into(),
                });
            }
            files.add(path, &raw, &mut entry)?;
        }
        files.finish(fallback_name)
    }

    /// Loads an app from a directory (symbolic links are refused: they
    /// could point anywhere).
    fn from_dir(root: &Path, limits: Limits, fallback_name: &str) -> Result<App, LoadError> {
        let mut files = Files::new(limits);
        let mut pending = vec![(root.to_owned(), String::new())];
        let mut count = 0usize;
        while let Some((dir, prefix)) = pending.pop() {
            let entries = fs::read_dir(&dir).map_err(|source| LoadError::Io {
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| LoadError::Io {
                    path: dir.clone(),
                    source,
                })?;
                count += 1;
                if count > limits.max_files {
                    return Err(LoadError::TooManyFiles {
                        limit: limits.max_files,
                    });
                }
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                let kind = entry.file_type().map_err(|source| LoadError::Io {
                    path: entry.path(),
                    source,
                })?;
                if kind.is_symlink() {
                    return Err(LoadError::BadEntry {
                        name,
                        reason: "symbolic links are not allowed in an app".into(),
                    });
                } else if kind.is_dir() {
                    pending.push((entry.path(), format!("{name}/")));
                } else {
                    let mut file =
                        fs::File::open(entry.path()).map_err(|source| LoadError::Io {
                            path: entry.path(),
                            source,
                        })?;
                    files.add(name.clone(), &name, &mut file)?;
                }
            }
        }
        files.finish(fallback_name)
    }

    /// The app's name (`name` in `manifest.toml`, else the file's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file at `path` (relative, `/`-separated, no leading `/`).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Every file's path, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.files.keys().map(String::as_str).collect();
        paths.sort_unstable();
        paths
    }
}

/// Files collected while loading, with the running totals the limits need.
struct Files {
    limits: Limits,
    total: u64,
    map: HashMap<String, Vec<u8>>,
}

impl Files {
    fn new(limits: Limits) -> Self {
        Files {
            limits,
            total: 0,
            map: HashMap::new(),
        }
    }

    /// Reads one file, counting what actually comes out of the reader (not
    /// what a header claims) against both limits.
    fn add(
        &mut self,
        path: String,
        raw_name: &str,
        reader: &mut dyn Read,
    ) -> Result<(), LoadError> {
        if self.map.contains_key(&path) {
            return Err(LoadError::Duplicate { name: path });
        }
        let mut data = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(LoadError::BadEntry {
                        name: raw_name.to_owned(),
                        reason: e.to_string(),
                    })
                }
            };
            if (data.len() + n) as u64 > self.limits.max_file {
                return Err(LoadError::FileTooLarge {
                    name: raw_name.to_owned(),
                    limit: self.limits.max_file,
                });
            }
            self.total += n as u64;
            if self.total > self.limits.max_total {
                return Err(LoadError::TooLarge {
                    limit: self.limits.max_total,
                });
            }
            data.extend_from_slice(&chunk[..n]);
        }
        self.map.insert(path, data);
        Ok(())
    }

    fn finish(self, fallback_name: &str) -> Result<App, LoadError> {
        if !self.map.contains_key("index.html") {
            return Err(LoadError::NoIndexHtml);
        }
        let name = match self.map.get("manifest.toml") {
            Some(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| LoadError::BadManifest("not UTF-8 text".into()))?;
                manifest_name(text)?
            }
            None => None,
        };
        Ok(App {
            name: name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| fallback_name.to_owned()),
            files: self.map,
        })
    }
}

/// Turns an entry name into a clean relative path: `None` for the root
/// itself, an error for anything absolute or climbing out with `..`.
/// Backslashes count as separators (archives made on Windows may use
/// them, and a browser would read them so).
fn clean_path(raw: &str) -> Result<Option<String>, LoadError> {
    let escape = || LoadError::PathEscape {
        name: raw.to_owned(),
    };
    if raw.starts_with('/') || raw.starts_with('\\') || raw.contains('\0') {
        return Err(escape());
    }
    let mut parts = Vec::new();
    for (i, part) in raw.split(['/', '\\']).enumerate() {
        match part {
            "" | "." => continue,
            ".." => return Err(escape()),
            // `C:` or `C:foo` is a Windows drive: absolute.
            p if i == 0 && p.len() >= 2 && p.as_bytes()[1] == b':' => return Err(escape()),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Reads the `name` key of `manifest.toml`'s top-level table.
///
/// A deliberately small reader (the host needs one key; a full TOML parser
/// would be a dependency for nothing): it reads `name = "…"` or
/// `name = '…'` before the first `[table]`, with the basic escapes of
/// TOML strings. Anything else is ignored.
fn manifest_name(text: &str) -> Result<Option<String>, LoadError> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        let Some(rest) = line.strip_prefix("name") else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue; // `names = …`, another key
        };
        let value = value.trim();
        let bad = |why: &str| LoadError::BadManifest(format!("name: {why}"));
        if let Some(literal) = value.strip_prefix('\'') {
            let end = literal
                .find('\'')
                .ok_or_else(|| bad("unterminated string"))?;
            return Ok(Some(literal[..end].to_owned()));
        }
        let body = value
            .strip_prefix('"')
            .ok_or_else(|| bad("expected a quoted string"))?;
        let mut out = String::new();
        let mut chars = body.chars();
        loop {
            match chars.next() {
                None => return Err(bad("unterminated string")),
                Some('"') => return Ok(Some(out)),
                Some('\\') => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| bad("bad \\u escape"))?;
                        out.push(c);
                    }
                    _ => return Err(bad("unknown escape")),
                },
                Some(c) => out.push(c),
            }
        }
    }
    Ok(None)
}

/// Packs the directory `dir` into a `.xdc` file at `out` (Deflate), after
/// checking that it loads as an app.
pub fn pack_dir(dir: &Path, out: &Path) -> Result<App, LoadError> {
    let app = App::load(dir)?;
    let io_err = |source| LoadError::Io {
        path: out.to_owned(),
        source,
    };
    let bytes = pack(&app).map_err(io_err)?;
    fs::write(out, bytes).map_err(io_err)?;
    Ok(app)
}

/// The bytes of a `.xdc` file (a zip, Deflate) holding every file of
/// `app`, in path order: what [`App::from_xdc_bytes`] loads back.
pub fn pack(app: &App) -> io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for path in app.paths() {
        zip.start_file(path, options).map_err(io::Error::other)?;
        zip.write_all(app.file(path).unwrap_or_default())?;
    }
    Ok(zip.finish().map_err(io::Error::other)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

    /// Builds a zip in memory from (name, content, method).
    fn zip_of(entries: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, method) in entries {
            let opts = SimpleFileOptions::default()
                .compression_method(*method)
                .large_file(data.len() > u32::MAX as usize);
            zip.start_file(*name, opts).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    const STORE: CompressionMethod = CompressionMethod::Stored;
    const DEFLATE: CompressionMethod = CompressionMethod::Deflated;

    fn load(bytes: &[u8]) -> Result<App, LoadError> {
        App::from_xdc_bytes(bytes, Limits::default(), "fallback")
    }

    #[test]
    fn store_and_deflate_entries_load_with_the_manifest_name() {
        let bytes = zip_of(&[
            ("index.html", b"<p>hi</p>", DEFLATE),
            (
                "manifest.toml",
                b"# comment\nname = \"Chess \\\"Pro\\\"\"\n[x]\nname = 'no'",
                STORE,
            ),
            ("js/app.js", b"1+1", STORE),
            ("./css/", b"", STORE),
        ]);
        let app = load(&bytes).unwrap();
        assert_eq!(app.name(), "Chess \"Pro\"");
        assert_eq!(app.file("index.html"), Some(&b"<p>hi</p>"[..]));
        assert_eq!(app.file("js/app.js"), Some(&b"1+1"[..]));
        assert_eq!(app.paths(), ["index.html", "js/app.js", "manifest.toml"]);
    }

    #[test]
    fn without_a_manifest_the_name_is_the_fallback() {
        let app = load(&zip_of(&[("index.html", b"x", STORE)])).unwrap();
        assert_eq!(app.name(), "fallback");
    }

    #[test]
    fn not_a_zip() {
        let err = load(b"<html>definitely not a zip</html>").unwrap_err();
        assert!(matches!(err, LoadError::NotAZip { .. }), "{err:?}");
        // A zip cut in half is not one either.
        let whole = zip_of(&[("index.html", b"hello", STORE)]);
        let err = load(&whole[..whole.len() / 2]).unwrap_err();
        assert!(matches!(err, LoadError::NotAZip { .. }), "{err:?}");
    }

    #[test]
    fn no_index_html() {
        let err = load(&zip_of(&[("sub/index.html", b"x", STORE)])).unwrap_err();
        assert!(matches!(err, LoadError::NoIndexHtml), "{err:?}");
    }

    #[test]
    fn paths_that_escape_the_app() {
        for name in [
            "../evil.html",
            "a/../../evil.html",
            "/etc/passwd",
            "\\windows\\evil",
            "..\\evil",
            "C:/evil",
            "a/..",
        ] {
            let bytes = zip_of(&[("index.html", b"x", STORE), (name, b"bad", STORE)]);
            let err = load(&bytes).unwrap_err();
            assert!(
                matches!(&err, LoadError::PathEscape { name: n } if n == name),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn zip_bomb_one_entry_is_stopped_while_inflating() {
        // 8 MiB of zeros deflate to a few KiB.
        let zeros = vec![0u8; 8 << 20];
        let bytes = zip_of(&[("index.html", b"x", STORE), ("bomb.bin", &zeros, DEFLATE)]);
        assert!(bytes.len() < 64 * 1024);
        let limits = Limits {
            max_file: 1 << 20,
            ..Limits::default()
        };
        let err = App::from_xdc_bytes(&bytes, limits, "x").unwrap_err();
        assert!(
            matches!(&err, LoadError::FileTooLarge { name, limit } if name == "bomb.bin" && *limit == 1 << 20),
            "{err:?}"
        );
    }

    #[test]
    fn zip_bomb_total_is_bounded() {
        let mb = vec![7u8; 1 << 20];
        let bytes = zip_of(&[
            ("index.html", b"x", STORE),
            ("a", &mb, DEFLATE),
            ("b", &mb, DEFLATE),
            ("c", &mb, DEFLATE),
        ]);
        let limits = Limits {
            max_total: (2 << 20) + 100,
            ..Limits::default()
        };
        let err = App::from_xdc_bytes(&bytes, limits, "x").unwrap_err();
        assert!(matches!(err, LoadError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn lying_size_headers_are_not_trusted() {
        // A stored entry whose local and central headers claim 1 byte while
        // 100000 follow: the reader must not hand out more than the limit.
        let data = vec![b'a'; 100_000];
        let mut bytes = zip_of(&[("index.html", b"x", STORE), ("liar", &data, STORE)]);
        let n = 100_000u32.to_le_bytes();
        let fake = 1u32.to_le_bytes();
        // Patch every "uncompressed size" field equal to 100000 to 1 (the
        // local header at offset 22, the central one at 24 of its record).
        let mut i = 0;
        while i + 4 <= bytes.len() {
            if bytes[i..i + 4] == n {
                bytes[i..i + 4].copy_from_slice(&fake);
            }
            i += 1;
        }
        let limits = Limits {
            max_file: 1000,
            ..Limits::default()
        };
        match App::from_xdc_bytes(&bytes, limits, "x") {
            // Either the reader notices the lie, or it hands out at most
            // the limit; it never loads 100000 bytes as "liar".
            Err(LoadError::FileTooLarge { .. }) | Err(LoadError::BadEntry { .. }) => {}
            Err(LoadError::NotAZip { .. }) => {}
            Ok(app) => assert!(app.file("liar").map_or(0, <[u8]>::len) <= 1000),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn too_many_files() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let mut entries: Vec<(&str, &[u8], CompressionMethod)> = names
            .iter()
            .map(|n| (n.as_str(), &b""[..], STORE))
            .collect();
        entries.push(("index.html", b"x", STORE));
        let limits = Limits {
            max_files: 10,
            ..Limits::default()
        };
        let err = App::from_xdc_bytes(&zip_of(&entries), limits, "x").unwrap_err();
        assert!(
            matches!(err, LoadError::TooManyFiles { limit: 10 }),
            "{err:?}"
        );
    }

    #[test]
    fn unsupported_compression_is_a_bad_entry() {
        let mut bytes = zip_of(&[("index.html", b"x", STORE), ("odd", b"abc", STORE)]);
        // Change the method of "odd" (local + central header) to 12 (bzip2).
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let mut at = 0;
            while let Some(pos) = find(&bytes[at..], sig) {
                let start = at + pos;
                let method_at = if sig[2] == 3 { start + 8 } else { start + 10 };
                let name_len_at = if sig[2] == 3 { start + 26 } else { start + 28 };
                let name_at = if sig[2] == 3 { start + 30 } else { start + 46 };
                let len = u16::from_le_bytes([bytes[name_len_at], bytes[name_len_at + 1]]);
                if &bytes[name_at..name_at + len as usize] == b"odd" {
                    bytes[method_at..method_at + 2].copy_from_slice(&12u16.to_le_bytes());
                }
                at = start + 4;
            }
        }
        let err = load(&bytes).unwrap_err();
        assert!(
            matches!(&err, LoadError::BadEntry { name, .. } if name == "#1" || name == "odd"),
            "{err:?}"
        );
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let bytes = zip_of(&[("index.html", b"x", STORE), ("./index.html", b"y", STORE)]);
        let err = load(&bytes).unwrap_err();
        assert!(matches!(err, LoadError::Duplicate { .. }), "{err:?}");
    }

    #[test]
    fn bad_manifest_is_reported() {
        let bytes = zip_of(&[
            ("index.html", b"x", STORE),
            ("manifest.toml", b"name = \"open", STORE),
        ]);
        let err = load(&bytes).unwrap_err();
        assert!(matches!(err, LoadError::BadManifest(_)), "{err:?}");
    }

    #[test]
    fn directory_loads_and_packs_to_the_same_app() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("js")).unwrap();
        fs::write(dir.path().join("index.html"), "<p>").unwrap();
        fs::write(dir.path().join("manifest.toml"), "name = 'Board'\n").unwrap();
        fs::write(dir.path().join("js/a.js"), "x").unwrap();
        let app = App::load(dir.path()).unwrap();
        assert_eq!(app.name(), "Board");
        assert_eq!(app.file("js/a.js"), Some(&b"x"[..]));

        let out = dir.path().join("board.xdc");
        pack_dir(dir.path(), &out).unwrap();
        let packed = App::load(&out).unwrap();
        assert_eq!(packed.paths(), app.paths());
        assert_eq!(packed.file("js/a.js"), Some(&b"x"[..]));
        // The same bytes in memory, loaded back.
        let again = App::from_xdc_bytes(&pack(&app).unwrap(), Limits::default(), "x").unwrap();
        assert_eq!((again.name(), again.paths()), (app.name(), app.paths()));
        for path in app.paths() {
            assert_eq!(again.file(path), app.file(path), "{path}");
        }
    }

    #[test]
    fn directory_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("index.html"), "<p>").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let err = App::load(dir.path()).unwrap_err();
        assert!(matches!(err, LoadError::BadEntry { .. }), "{err:?}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = App::load(Path::new("/nonexistent/app.xdc")).unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    }
}
