//! Opening inputs: paths, globs and stdin, and objects on S3 (`s3://`
//! addresses, globs matched against the bucket's listing), with gzip and
//! zstd undone on the way in (by extension, by `--compression`, or by
//! sniffing magic bytes). An object is read as a stream, never whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::client::s3::read::ObjectReader;
use crate::client::s3::{self, Client, ObjectUrl};
use crate::error::{Failure, Kind, usage};
use crate::progress::Progress;

use super::snapshot::{Ended, Snapshot};

/// How an input is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// From the file extension, else from the first bytes
    #[default]
    Auto,
    /// Not compressed
    None,
    /// gzip (.gz)
    Gzip,
    /// Zstandard (.zst)
    Zstd,
}

impl Compression {
    /// The compression a file name announces, and the name without it
    /// (`orders.csv.gz` → gzip, `orders.csv`).
    pub fn from_path(path: &Path) -> (Compression, PathBuf) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let found = match ext.as_deref() {
            Some("gz" | "gzip") => Compression::Gzip,
            Some("zst" | "zstd") => Compression::Zstd,
            _ => return (Compression::Auto, path.to_path_buf()),
        };
        (found, path.with_extension(""))
    }

    /// This compression, or `other` when this one is [`Compression::Auto`].
    fn or(self, other: Compression) -> Compression {
        match self {
            Compression::Auto => other,
            explicit => explicit,
        }
    }
}

/// An opened input.
pub struct Input {
    /// The name used in messages: the path as given, or `stdin`.
    pub name: String,
    /// The bytes, decompressed.
    pub reader: Box<dyn BufRead>,
}

/// An object on S3, as its listing (or HEAD) found it.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// A client for its bucket.
    pub client: Client,
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// The version read: a read fails rather than mix two versions.
    pub etag: String,
}

impl PartialEq for StoredObject {
    fn eq(&self, other: &Self) -> bool {
        self.client.bucket() == other.client.bucket()
            && self.key == other.key
            && self.etag == other.etag
    }
}

impl Eq for StoredObject {}

/// One input named on the command line: a path, an object, or stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file.
    Path(PathBuf),
    /// An object on S3.
    Object(Box<StoredObject>),
    /// Standard input (`-`, or no input named).
    Stdin,
}

impl Location {
    /// The path, if this is a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Location::Path(p) => Some(p),
            Location::Object(_) | Location::Stdin => None,
        }
    }

    /// The name whose extensions say the format and compression: a file's
    /// path, an object's key.
    pub fn named(&self) -> Option<&Path> {
        match self {
            Location::Path(p) => Some(p),
            Location::Object(o) => Some(Path::new(&o.key)),
            Location::Stdin => None,
        }
    }

    /// The input as messages and the begin line name it.
    pub fn shown(&self) -> String {
        match self {
            Location::Path(p) => p.display().to_string(),
            Location::Object(o) => o.client.shown(Some(&o.key)),
            Location::Stdin => "stdin".into(),
        }
    }

    /// Size on disk (or in the bucket), for the progress bar.
    pub fn size(&self) -> Option<u64> {
        if let Location::Object(o) = self {
            return Some(o.size);
        }
        let meta = std::fs::metadata(self.path()?).ok()?;
        meta.is_file().then_some(meta.len())
    }
}

/// The objects an `s3://` input names: the one object, or those whose keys
/// match its glob (`*` and `?` stay within one `/`-separated level, as for
/// files), in key order.
fn locate_objects(text: &str) -> Result<Vec<Location>> {
    let url = ObjectUrl::parse(text)?;
    let client = Client::from_env(&url)?;
    let object = |info: s3::ObjectInfo| {
        Location::Object(Box::new(StoredObject {
            client: client.clone(),
            key: info.key,
            size: info.size,
            etag: info.etag,
        }))
    };
    if !has_glob_chars(&url.key) {
        if url.key.is_empty() || url.key.ends_with('/') {
            return Err(usage(format!(
                "{text} names a prefix: name an object, or a glob such as {text}{}*.csv",
                if url.key.is_empty() { "/" } else { "" }
            )));
        }
        return match client.head(&url.key)? {
            Some(info) => Ok(vec![object(info)]),
            None => bail!("{text} does not exist"),
        };
    }
    let pattern =
        glob::Pattern::new(&url.key).map_err(|e| usage(format!("bad pattern {text:?}: {e}")))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let prefix = &url.key[..url.key.find(['*', '?', '[']).unwrap_or(url.key.len())];
    let matches: Vec<Location> = client
        .list(prefix)?
        .into_iter()
        .filter(|o| !o.key.ends_with('/') && pattern.matches_with(&o.key, options))
        .map(object)
        .collect();
    if matches.is_empty() {
        bail!("no object matches {text:?}");
    }
    Ok(matches)
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Turns the command line's inputs into locations: `-` is stdin (at most
/// once), a pattern that is not an existing file is expanded as a glob in
/// sorted order, and no inputs at all means stdin — unless stdin is a
/// terminal, which is a usage error rather than a silent wait.
pub fn locate(args: &[PathBuf]) -> Result<Vec<Location>> {
    if args.is_empty() {
        if io::stdin().is_terminal() {
            return Err(Failure::new(Kind::Usage, "no input: stdin is a terminal")
                .hint("name an input file, or pipe data in (use - to read a terminal)")
                .into());
        }
        return Ok(vec![Location::Stdin]);
    }
    let mut out = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        if s3::url::is_url(&text) {
            out.extend(locate_objects(&text)?);
        } else if text == "-" {
            if out.contains(&Location::Stdin) {
                return Err(usage("stdin (-) can be named only once"));
            }
            out.push(Location::Stdin);
        } else if has_glob_chars(&text) && !arg.exists() {
            let mut matches: Vec<PathBuf> = glob::glob(&text)
                .map_err(|e| usage(format!("bad pattern {text:?}: {e}")))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matches.is_empty() {
                bail!("no file matches {text:?}");
            }
            matches.sort();
            out.extend(matches.into_iter().map(Location::Path));
        } else {
            out.push(Location::Path(arg.clone()));
        }
    }
    Ok(out)
}

/// The single input of a program that reads one (`None` or `-`: stdin).
pub fn locate_one(path: Option<&Path>) -> Result<Location> {
    let args: Vec<PathBuf> = path.map(Path::to_path_buf).into_iter().collect();
    let mut found = locate(&args)?;
    if found.len() != 1 {
        return Err(usage("this program reads one input"));
    }
    Ok(found.remove(0))
}

/// Opens a location for reading, undoing its compression. Bytes read from
/// the file (before decompression) advance `progress`.
///
/// A regular file (named, or given as stdin) is read up to the size it has
/// now, and a last line that is still being written fails the read (see
/// [`snapshot`](super::snapshot)); any input ends at its first end of file.
pub fn open(location: &Location, compression: Compression, progress: &Progress) -> Result<Input> {
    if let Location::Object(object) = location {
        let name = location.shown();
        let reader = ObjectReader::open(&object.client, &object.key, Some(&object.etag), 0, None)?;
        let by_name = Compression::from_path(Path::new(&object.key)).0;
        let raw: Box<dyn Read> = Box::new(progress.wrap_reader(reader));
        return decode(name, raw, compression.or(by_name));
    }
    let (name, file, by_name) = match location {
        Location::Path(p) => {
            let file = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            (
                p.display().to_string(),
                Some(file),
                Compression::from_path(p).0,
            )
        }
        Location::Stdin | Location::Object(_) => {
            ("stdin".to_string(), stdin_file(), Compression::Auto)
        }
    };
    let regular = match file {
        Some(file) => {
            let meta = file
                .metadata()
                .with_context(|| format!("cannot read {name}"))?;
            // A regular file that says it is empty may be a pseudo-file
            // (/proc, /sys) whose size tells nothing: it is read to its
            // first end of file, like a stream.
            if meta.is_file() && meta.len() > 0 {
                Ok((file, meta.len()))
            } else {
                Err(Some(file))
            }
        }
        None => Err(None),
    };
    let (raw, chosen): (Box<dyn Read>, Compression) = match regular {
        Ok((mut file, size)) => {
            // Stdin may have been read a little before us (`{ read h; etl-extract; } < f`).
            let at = file
                .stream_position()
                .with_context(|| format!("cannot read {name}"))?;
            let chosen = match (compression, by_name) {
                (Compression::Auto, Compression::Auto) => {
                    let mut head = [0u8; 4];
                    let n = file
                        .read_at(&mut head, at)
                        .with_context(|| format!("cannot read {name}"))?;
                    let n = n.min(usize::try_from(size.saturating_sub(at)).unwrap_or(n));
                    sniff(&mut &head[..n]).with_context(|| format!("cannot read {name}"))?
                }
                (Compression::Auto, by_name) => by_name,
                (explicit, _) => explicit,
            };
            let snapshot = Snapshot::new(file, at, size);
            let snapshot = match chosen {
                Compression::None | Compression::Auto => snapshot,
                Compression::Gzip | Compression::Zstd => snapshot.compressed(),
            };
            (counted(location, snapshot, progress), chosen)
        }
        Err(stream) => {
            let raw = match (stream, location) {
                (Some(file), Location::Path(_)) => counted(location, Ended::new(file), progress),
                _ => Box::new(Ended::new(io::stdin())),
            };
            (raw, compression.or(by_name))
        }
    };
    decode(name, raw, chosen)
}

/// Buffers `raw` and undoes its compression (`Auto`: by its first bytes).
pub fn decode(name: String, raw: Box<dyn Read>, chosen: Compression) -> Result<Input> {
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let chosen = match chosen {
        Compression::Auto => sniff(&mut buffered).with_context(|| format!("cannot read {name}"))?,
        chosen => chosen,
    };
    let reader: Box<dyn BufRead> = match chosen {
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(buffered),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            1 << 16,
            zstd::stream::read::Decoder::with_buffer(buffered)
                .with_context(|| format!("cannot start zstd decoding of {name}"))?,
        )),
        Compression::None | Compression::Auto => Box::new(buffered),
    };
    Ok(Input { name, reader })
}

/// A named file's bytes advance the progress bar (stdin's size is not
/// known: its bar counts records).
fn counted(location: &Location, raw: impl Read + 'static, progress: &Progress) -> Box<dyn Read> {
    match location {
        Location::Path(_) | Location::Object(_) => Box::new(progress.wrap_reader(raw)),
        Location::Stdin => Box::new(raw),
    }
}

/// Stdin as a file of its own, when it can be (a descriptor that clones).
fn stdin_file() -> Option<File> {
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(File::from)
}

fn sniff(input: &mut impl BufRead) -> io::Result<Compression> {
    let head = input.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_extension_is_stripped() {
        let (c, rest) = Compression::from_path(Path::new("a/orders.csv.gz"));
        assert_eq!(c, Compression::Gzip);
        assert_eq!(rest, Path::new("a/orders.csv"));
        let (c, rest) = Compression::from_path(Path::new("orders.csv"));
        assert_eq!(c, Compression::Auto);
        assert_eq!(rest, Path::new("orders.csv"));
    }

    /// A compressed file read while it grows stops at its size when opened,
    /// and the decoder finds the stream cut there.
    #[test]
    fn a_compressed_file_cut_at_its_size_when_opened_fails() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("n\n");
        (0..20_000).for_each(|i| text.push_str(&format!("{i}\n")));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(text.as_bytes(), 1).unwrap();
        let progress = Progress::new(
            "test",
            crate::progress::Verbosity {
                quiet: true,
                ..Default::default()
            },
            None,
        );
        // By extension, and by sniffing the first bytes.
        for (name, bytes) in [("a.csv.gz", &gz), ("a.csv.zst", &zst), ("a.bin", &gz)] {
            let path = dir.path().join(name);
            let half = bytes.len() / 2;
            std::fs::write(&path, &bytes[..half]).unwrap();
            let mut input =
                open(&Location::Path(path.clone()), Compression::Auto, &progress).unwrap();
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(&bytes[half..])
                .unwrap();
            let mut out = Vec::new();
            assert!(input.reader.read_to_end(&mut out).is_err(), "{name}");
        }
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&mut &[0x1f, 0x8b, 8][..]).unwrap(), Compression::Gzip);
        assert_eq!(
            sniff(&mut &[0x28, 0xb5, 0x2f, 0xfd][..]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(sniff(&mut &b"a,b"[..]).unwrap(), Compression::None);
    }
}
