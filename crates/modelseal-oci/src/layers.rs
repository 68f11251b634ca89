//! What an artifact's layers unpack to (`spec/oci.md` §4): which media types are model
//! layers, and the rules a layer's archive must keep. A model's files are the union of
//! its layers, never an overlay: a path in two layers, a whiteout, a link or a device
//! refuses the whole artifact.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;

use modelseal_core::{Blake3Digest, ManifestEntry, ManifestPath};

use crate::OciError;

/// ModelPack (CNCF model-spec v1): the annotation naming a layer's file.
pub const MODELPACK_FILEPATH: &str = "org.cncf.model.filepath";
/// The OCI title annotation, which artifact mounts (Podman, CRI-O) name a file by.
pub const OCI_TITLE: &str = "org.opencontainers.image.title";
/// ORAS's annotation for a layer to unpack (as a gzipped tar) into a directory.
pub const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";

/// Media type prefixes whose layers modelseal unpacks.
const LAYER_FAMILIES: &[&str] = &[
    // CNCF ModelPack: weight, weight.config, doc, code, dataset
    "application/vnd.cncf.model.",
    // KitOps ModelKit: model, modelpart, dataset, code, docs, prompts
    "application/vnd.kitops.modelkit.",
    // plain OCI and Docker image layers
    "application/vnd.oci.image.layer.v1.",
    "application/vnd.docker.image.rootfs.diff.",
];

/// How a layer's bytes are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerFormat {
    /// A tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGzip,
    /// A zstd-compressed tar archive.
    TarZstd,
    /// The bytes of one file (ModelPack `.raw`), named by [`MODELPACK_FILEPATH`].
    Raw(ManifestPath),
}

impl LayerFormat {
    /// How the layer is read, as stamps record it: `tar`, `tar+gzip`, `tar+zstd`, or
    /// `raw:PATH`. Two layers with one digest and one key unpack to the same files.
    pub fn key(&self) -> String {
        match self {
            Self::Tar => "tar".into(),
            Self::TarGzip => "tar+gzip".into(),
            Self::TarZstd => "tar+zstd".into(),
            Self::Raw(path) => format!("raw:{path}"),
        }
    }
}

/// Reads a layer descriptor's media type (and, for raw layers, its file path).
pub fn layer_format(
    media_type: &str,
    annotations: Option<&std::collections::HashMap<String, String>>,
    layer: &str,
) -> Result<LayerFormat, OciError> {
    let bad = |problem: String| OciError::Layer {
        layer: layer.to_owned(),
        problem,
    };
    if !LAYER_FAMILIES.iter().any(|p| media_type.starts_with(p)) {
        return Err(bad(format!(
            "media type {media_type:?} is not a model layer (ModelPack, KitOps or an image layer)"
        )));
    }
    if media_type.contains("nondistributable") || media_type.contains(".foreign.") {
        return Err(bad(format!(
            "media type {media_type:?} is a non-distributable layer, fetched from elsewhere"
        )));
    }
    // CRI-O unpacks an artifact layer whose media type contains `.tar` anywhere; a raw
    // layer named `….tar.raw` would be one file here and an archive there.
    let archive_words = [".tar", "gzip", "zstd"];
    if media_type.ends_with(".raw") && archive_words.iter().any(|w| media_type.contains(w)) {
        return Err(bad(format!(
            "media type {media_type:?} names a raw file and an archive; readers disagree on which it is"
        )));
    }
    let format = if media_type.ends_with(".tar") {
        LayerFormat::Tar
    } else if media_type.ends_with(".tar+gzip") || media_type.ends_with(".tar.gzip") {
        LayerFormat::TarGzip
    } else if media_type.ends_with(".tar+zstd") {
        LayerFormat::TarZstd
    } else if media_type.ends_with(".raw") && media_type.starts_with("application/vnd.cncf.model.")
    {
        let path = annotations
            .and_then(|a| a.get(MODELPACK_FILEPATH))
            .ok_or_else(|| {
                bad(format!(
                    "a raw layer without the {MODELPACK_FILEPATH} annotation"
                ))
            })?;
        // Artifact mounts name the file by its title: two names for one layer would let
        // the runtime call other bytes `config.json` than modelseal signed as it.
        if let Some(title) = annotations.and_then(|a| a.get(OCI_TITLE)) {
            if title != path {
                return Err(bad(format!(
                    "a raw layer named {path:?} by {MODELPACK_FILEPATH} and {title:?} by {OCI_TITLE}; readers disagree on which is its name"
                )));
            }
        }
        // ORAS unpacks a layer with this annotation as a gzipped tar into a directory
        // of that name: the raw file modelseal hashed would be a tree there.
        if annotations.is_some_and(|a| a.contains_key(ORAS_UNPACK)) {
            return Err(bad(format!(
                "a raw layer with the {ORAS_UNPACK} annotation, which ORAS unpacks as an archive; readers disagree on what it is"
            )));
        }
        LayerFormat::Raw(parse_path(path).map_err(bad)?)
    } else {
        return Err(bad(format!(
            "media type {media_type:?} has no archive format modelseal reads (.tar, .tar+gzip, .tar+zstd, ModelPack .raw)"
        )));
    };
    // Artifact mounts (Podman, CRI-O) present a layer with a title as one file of that
    // name, its bytes the archive's: modelseal would sign what the archive holds.
    if !matches!(format, LayerFormat::Raw(_)) {
        if let Some(title) = annotations.and_then(|a| a.get(OCI_TITLE)) {
            return Err(bad(format!(
                "an archive layer titled {title:?} ({OCI_TITLE}): artifact mounts present it as that one file, modelseal unpacks it; readers disagree on what it is"
            )));
        }
    }
    Ok(format)
}

/// Most archive bytes read between two files (headers, PAX and GNU long-name records,
/// directory entries, padding): the tar reader holds such records in memory whole, so
/// they are bounded before they are read, not after.
const MAX_METADATA_BYTES: u64 = 1 << 20;
/// Most bytes of file names over one model (the manifest holds them all).
const MAX_PATH_BYTES: usize = 64 << 20;

/// Limits on what layers may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Most files in one model.
    pub max_files: usize,
    /// A compressed layer may unpack to at most this many times its size (plus 64 MiB):
    /// real weights barely compress, and a decompression bomb should end early.
    pub max_expansion: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_files: 100_000,
            max_expansion: 1024,
        }
    }
}

/// Collects the files of all layers, in layer order, refusing duplicates across them.
/// With `out`, each file is also written under that directory (which must be new and
/// empty: the caller renames it into place only after every layer checked out).
pub struct Unpacker<'a> {
    out: Option<&'a Path>,
    limits: UnpackLimits,
    seen: HashSet<ManifestPath>,
    /// Directory entries met so far: none may share a path with a file.
    directories: HashSet<ManifestPath>,
    /// The files found so far.
    pub entries: Vec<ManifestEntry>,
    /// The directory entries of the layer read last.
    pub layer_directories: Vec<ManifestPath>,
    /// Bytes unpacked so far.
    pub bytes: u64,
    path_bytes: usize,
}

/// A reader that refuses to go past an allowance the unpacker sets: a file's size while
/// it is read, [`MAX_METADATA_BYTES`] between files. Over the whole (decompressed) stream
/// it also enforces the layer's expansion budget.
struct Allowance<R> {
    inner: R,
    left: std::rc::Rc<std::cell::Cell<u64>>,
    budget: u64,
    /// What was read between two files' data (headers, extension records, padding),
    /// kept to be checked the way other readers read it; empty while a file is read.
    between: std::rc::Rc<std::cell::RefCell<Option<Vec<u8>>>>,
}

impl<R: Read> Read for Allowance<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.get().min(self.budget);
        if left == 0 {
            return Err(io::Error::other(
                "archive metadata (headers, long names, extended records) or data beyond the layer's budget",
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if let Some(kept) = self.between.borrow_mut().as_mut() {
            kept.extend_from_slice(&buf[..n]);
        }
        self.left.set(self.left.get() - n as u64);
        self.budget -= n as u64;
        Ok(n)
    }
}

impl<'a> Unpacker<'a> {
    /// A new unpacker; `out` as for the type.
    pub fn new(out: Option<&'a Path>, limits: UnpackLimits) -> Self {
        Self {
            out,
            limits,
            seen: HashSet::new(),
            directories: HashSet::new(),
            entries: Vec::new(),
            layer_directories: Vec::new(),
            bytes: 0,
            path_bytes: 0,
        }
    }

    /// Takes one layer's files and directories as an earlier read of the same layer (its
    /// digest and format) found them, checked against the other layers as if read again.
    pub fn carry(
        &mut self,
        layer: &str,
        files: Vec<ManifestEntry>,
        directories: Vec<ManifestPath>,
    ) -> Result<(), OciError> {
        self.layer_directories.clear();
        for path in directories {
            self.directory(layer, path)?;
        }
        for entry in files {
            self.claim(layer, &entry.path)?;
            self.entries.push(entry);
        }
        Ok(())
    }

    /// Records a directory entry: no file of any layer may share its path.
    fn directory(&mut self, layer: &str, path: ManifestPath) -> Result<(), OciError> {
        // Layers apply in order at runtime: a directory where a file of another layer
        // is replaces it (and the reverse).
        if self.seen.contains(&path) {
            return Err(OciError::Layer {
                layer: layer.to_owned(),
                problem: format!(
                    "{:?} is a directory here and a file elsewhere; applied in order, one replaces the other",
                    path.as_str()
                ),
            });
        }
        self.layer_directories.push(path.clone());
        self.directories.insert(path);
        Ok(())
    }

    /// Claims a file's path for this model: once, never a directory's, within limits.
    fn claim(&mut self, layer: &str, path: &ManifestPath) -> Result<(), OciError> {
        let bad = |problem: String| OciError::Layer {
            layer: layer.to_owned(),
            problem,
        };
        if self.directories.contains(path) {
            return Err(bad(format!(
                "{:?} is a file here and a directory elsewhere; applied in order, one replaces the other",
                path.as_str()
            )));
        }
        if !self.seen.insert(path.clone()) {
            return Err(bad(format!(
                "{:?} appears twice (in this or an earlier layer)",
                path.as_str()
            )));
        }
        self.path_bytes += path.as_str().len();
        if self.seen.len() > self.limits.max_files || self.path_bytes > MAX_PATH_BYTES {
            return Err(bad(format!(
                "more than {} files, or {MAX_PATH_BYTES} bytes of file names, in one model",
                self.limits.max_files
            )));
        }
        Ok(())
    }

    /// Unpacks one layer read from `data` (which checks the layer's own digest at its
    /// end; the whole stream is always read to its end so that check runs).
    pub fn layer(
        &mut self,
        layer: &str,
        format: &LayerFormat,
        compressed_size: u64,
        data: &mut dyn Read,
    ) -> Result<(), OciError> {
        let bad = |problem: String| OciError::Layer {
            layer: layer.to_owned(),
            problem,
        };
        self.layer_directories.clear();
        let budget = match format {
            LayerFormat::Tar | LayerFormat::Raw(_) => u64::MAX,
            LayerFormat::TarGzip | LayerFormat::TarZstd => compressed_size
                .saturating_mul(self.limits.max_expansion)
                .saturating_add(64 << 20),
        };
        let result = match format {
            LayerFormat::Raw(path) => {
                let path = path.clone();
                self.file(layer, &path, compressed_size, data)
            }
            LayerFormat::Tar => {
                // Docker and containers/storage pick the decompressor from the bytes,
                // not the media type: a "plain" layer that is also a compressed stream
                // unpacks to other files there.
                let mut input = io::BufReader::new(&mut *data);
                match compression_magic(&mut input) {
                    Err(e) => Err(crate::from_io(e, &format!("layer {layer}"))),
                    Ok(Some(kind)) => Err(bad(format!(
                        "declared an uncompressed tar, but its bytes start as a {kind} stream, which runtimes that look at the bytes decompress"
                    ))),
                    Ok(None) => self.tar(layer, &mut input, budget),
                }
            }
            // One gzip member or zstd frame, and nothing after it: GNU tar, Go and
            // Python decompress every member or frame that follows, so bytes after the
            // first would be files the runtime unpacks and modelseal never saw.
            LayerFormat::TarGzip => {
                let mut input = io::BufReader::new(&mut *data);
                let mut decoder = flate2::bufread::GzDecoder::new(&mut input);
                let r = self.tar(layer, &mut decoder, budget);
                drop(decoder);
                r.and_then(|()| nothing_after(layer, "the gzip stream's first member", &mut input))
            }
            LayerFormat::TarZstd => {
                let mut input = io::BufReader::new(&mut *data);
                let mut decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
                    .map_err(|e| bad(format!("zstd: {e}")))?;
                let r = self.tar(layer, &mut decoder, budget);
                drop(decoder);
                r.and_then(|()| nothing_after(layer, "the first zstd frame", &mut input))
            }
        };
        // Drain what is left: the layer digest is checked at the end of the stream, and
        // an error there outranks one found inside (a swapped layer should say so, not
        // "bad tar").
        let drained = io::copy(data, &mut io::sink());
        if let Err(e) = drained {
            return Err(crate::from_io(e, &format!("layer {layer}")));
        }
        result
    }

    fn tar(&mut self, layer: &str, data: &mut dyn Read, budget: u64) -> Result<(), OciError> {
        let bad = |problem: String| OciError::Layer {
            layer: layer.to_owned(),
            problem,
        };
        let io_err = |e: io::Error| match crate::from_io(e, &format!("layer {layer}")) {
            OciError::Transport(text) => bad(format!("not a valid tar archive: {text}")),
            other => other,
        };
        let left = std::rc::Rc::new(std::cell::Cell::new(MAX_METADATA_BYTES));
        let between = std::rc::Rc::new(std::cell::RefCell::new(Some(Vec::new())));
        let reader = Allowance {
            inner: data,
            left: std::rc::Rc::clone(&left),
            budget,
            between: std::rc::Rc::clone(&between),
        };
        // Padding the previous file's data left before the next header.
        let mut padding = 0usize;
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(io_err)?;
        let mut any_entry = false;
        for entry in entries {
            let mut entry = entry.map_err(io_err)?;
            any_entry = true;
            let read = between.borrow_mut().replace(Vec::new()).unwrap_or_default();
            check_between(&read, padding).map_err(&bad)?;
            padding = 0;
            check_pax(&mut entry).map_err(&bad)?;
            let raw_path = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| bad("an entry whose name is not UTF-8".into()))?;
            let kind = entry.header().entry_type();
            check_header(entry.header(), kind, entry.size()).map_err(&bad)?;
            if raw_path.ends_with('/') && !kind.is_dir() {
                // Go, Python and containers/storage make such an entry a directory.
                return Err(bad(format!(
                    "{raw_path:?} is named as a directory but typed as a file; readers disagree on what it is"
                )));
            }
            let name = normalize(&raw_path);
            if name.is_empty() && kind.is_dir() {
                continue; // the archive's root, `./`
            }
            let path = parse_path(&name).map_err(&bad)?;
            let base = name.rsplit('/').next().unwrap_or(&name);
            if base.starts_with(".wh.") {
                return Err(bad(format!(
                    "{name:?} is a whiteout: a model is the union of its layers, never an overlay"
                )));
            }
            match kind {
                tar::EntryType::Directory => {
                    self.directory(layer, path)?;
                    continue;
                }
                // Not `7` (contiguous): GNU tar and Python read it as a file, containerd
                // refuses the layer.
                tar::EntryType::Regular => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    return Err(bad(format!(
                        "{name:?} is a link (to {target:?}); model layers hold regular files only"
                    )));
                }
                other => {
                    return Err(bad(format!(
                        "{name:?} is not a regular file (tar type {:?}); model layers hold regular files only",
                        char::from(other.as_byte())
                    )));
                }
            }
            let size = entry.size();
            // The file's bytes may be read, and then metadata again up to the next file.
            left.set(size.saturating_add(MAX_METADATA_BYTES));
            *between.borrow_mut() = None;
            self.file(layer, &path, size, &mut entry)?;
            *between.borrow_mut() = Some(Vec::new());
            padding = (size % 512)
                .try_into()
                .map_or(0, |r: usize| (512 - r) % 512);
            left.set(MAX_METADATA_BYTES);
        }
        // The last file's padding and the end-of-archive block the reader stopped at.
        let read = between.borrow_mut().take().unwrap_or_default();
        if read.len() < padding || read.iter().any(|b| *b != 0) {
            return Err(bad(
                "bytes that are not zeros in the padding before the end-of-archive blocks".into(),
            ));
        }
        // The reader stops at the first zero block; what follows (the second zero block
        // and the record's padding) must be zeros too. An entry after the end marker is
        // one that some readers unpack (`tar --ignore-zeros`, concatenated archives).
        let mut rest = archive.into_inner();
        let mut buf = [0u8; 8192];
        // An empty stream is no archive: GNU tar refuses it, where Go and the tar crate
        // read no files.
        let mut empty = read.is_empty() && !any_entry;
        loop {
            let n = rest.read(&mut buf).map_err(io_err)?;
            if n == 0 && empty {
                return Err(bad(
                    "an empty stream, not a tar archive (not even its end-of-archive blocks)"
                        .into(),
                ));
            }
            empty = false;
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(bad(
                    "data after the archive's end-of-archive blocks; a layer holds one tar archive and nothing after it".into(),
                ));
            }
        }
    }

    /// Hashes (and writes) one file of `size` bytes.
    fn file(
        &mut self,
        layer: &str,
        path: &ManifestPath,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), OciError> {
        let bad = |problem: String| OciError::Layer {
            layer: layer.to_owned(),
            problem,
        };
        self.claim(layer, path)?;
        let mut writer = match self.out {
            Some(dir) => Some(create_file(dir, path)?),
            None => None,
        };
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        loop {
            let n = data
                .read(&mut buf)
                .map_err(|e| crate::from_io(e, &format!("layer {layer}")))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if read > size {
                return Err(bad(format!(
                    "{:?} is longer than its header says",
                    path.as_str()
                )));
            }
            if n >= 256 << 10 {
                hasher.update_rayon(&buf[..n]);
            } else {
                hasher.update(&buf[..n]);
            }
            if let Some(w) = writer.as_mut() {
                w.write_all(&buf[..n]).map_err(|source| OciError::Write {
                    path: path.to_string(),
                    source,
                })?;
            }
        }
        if read != size {
            return Err(bad(format!(
                "{:?} ends after {read} of {size} bytes",
                path.as_str()
            )));
        }
        if let Some(w) = writer {
            w.sync_all().map_err(|source| OciError::Write {
                path: path.to_string(),
                source,
            })?;
        }
        self.bytes += size;
        self.entries.push(ManifestEntry {
            path: path.clone(),
            size,
            blake3: Blake3Digest::from_bytes(*hasher.finalize().as_bytes()),
        });
        Ok(())
    }
}

/// The compression a stream's first bytes announce (gzip, zstd including its skippable
/// frames, xz, bzip2), without consuming them.
fn compression_magic(input: &mut impl io::BufRead) -> io::Result<Option<&'static str>> {
    let head = input.fill_buf()?;
    let starts = |magic: &[u8]| head.len() >= magic.len() && &head[..magic.len()] == magic;
    Ok(if starts(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18])
    {
        Some("zstd")
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some("xz")
    } else if starts(b"BZh") {
        Some("bzip2")
    } else {
        None
    })
}

/// Header fields readers interpret differently, refused: a size on a directory (the
/// `tar` crate skips that many bytes, every other reader reads the next header there), a
/// POSIX `ustar` magic with a version other than `00` (the `tar` crate then ignores the
/// name prefix, Go and GNU tar apply it), a pre-POSIX header with bytes in the prefix
/// area, and a STAR header (its shorter prefix is read differently).
fn check_header(header: &tar::Header, kind: tar::EntryType, size: u64) -> Result<(), String> {
    if kind.is_dir() && size != 0 {
        return Err(format!(
            "a directory entry with {size} bytes of data; readers disagree on where the next entry starts"
        ));
    }
    let raw = header.as_bytes();
    let magic = &raw[257..263];
    let version = &raw[263..265];
    let prefix = &raw[345..500];
    if magic == b"ustar\0" && version != b"00" {
        return Err(
            "a ustar header whose version is not \"00\"; readers disagree on its name".into(),
        );
    }
    if magic == b"ustar\0" && &raw[508..512] == b"tar\0" {
        return Err("a STAR header; readers disagree on its name prefix".into());
    }
    let gnu = magic == b"ustar " && version == b" \0";
    if magic != b"ustar\0" && !gnu && prefix.iter().any(|b| *b != 0) {
        return Err(
            "a pre-POSIX header with data in the name prefix area; readers disagree on its name"
                .into(),
        );
    }
    // GNU headers keep atime and ctime where ustar keeps the prefix. Python's tarfile
    // reads those bytes as a prefix whatever the magic, and Go does when they are not
    // octal; the `tar` crate never does. GNU tar writes them only for incremental dumps.
    if gnu && raw[345] != 0 {
        return Err(
            "a GNU header with access or change times; readers disagree on whether they are a name prefix"
                .into(),
        );
    }
    // Python makes an old-style regular entry whose own header name ends in "/" a
    // directory even when a PAX or GNU long name then renames it.
    let own_name = &raw[..100];
    let own_name = &own_name[..own_name.iter().position(|b| *b == 0).unwrap_or(100)];
    if !kind.is_dir() && own_name.ends_with(b"/") {
        return Err(format!(
            "{:?} in the header is named as a directory but typed as a file; readers disagree on what it is",
            String::from_utf8_lossy(own_name)
        ));
    }
    Ok(())
}

/// Checks what a reader went through between two files' data: the previous file's
/// `padding` (zeros), then extension entries (PAX records, GNU long names), then the next
/// file's header. GNU tar and Python read a long name up to its NUL, wherever the
/// declared size ends, and Python reads PAX records on into the padding: so a long name
/// must be exactly its bytes and one NUL, and every padding must be zeros.
fn check_between(read: &[u8], padding: usize) -> Result<(), String> {
    let odd = || "extension headers laid out so that readers may read them differently".to_owned();
    let (pad, mut rest) = read.split_at_checked(padding).ok_or_else(odd)?;
    if pad.iter().any(|b| *b != 0) {
        return Err("bytes that are not zeros in a file's padding".into());
    }
    while rest.len() > 512 {
        let (header, after) = rest.split_at(512);
        check_numbers(header)?;
        let kind = header[156];
        let size = usize::try_from(number(&header[124..136], true)?).map_err(|_| odd())?;
        let padded = size.div_ceil(512) * 512;
        let (body, tail) = after.split_at_checked(padded).ok_or_else(odd)?;
        let (data, zeros) = body.split_at(size);
        if zeros.iter().any(|b| *b != 0) {
            return Err("bytes that are not zeros in the padding of an extension record (Python reads records on into it)".into());
        }
        if matches!(kind, b'L' | b'K') {
            let name_ends = data.iter().position(|b| *b == 0);
            if name_ends != Some(size.saturating_sub(1)) || size == 0 {
                return Err("a GNU long name that is not exactly its bytes and one NUL (readers cut it at different places)".into());
            }
        }
        if matches!(kind, b'x' | b'g') {
            check_pax_layout(data)?;
        }
        rest = tail;
    }
    if rest.len() != 512 {
        return Err(odd());
    }
    check_numbers(rest)
}

/// The numeric fields of a tar header, each spelled so that every reader reads the
/// same number: Go trims spaces and NULs at both ends and parses the rest as octal (an
/// error otherwise), Python cuts at the first NUL and strips spaces (and stops listing
/// the archive at a field it cannot parse), GNU tar reads octal digits up to the first
/// other byte. Agreed: leading spaces, octal digits, then only spaces and NULs; or, for
/// the fields that may hold large values, positive base-256.
fn check_numbers(header: &[u8]) -> Result<(), String> {
    const FIELDS: &[(&str, std::ops::Range<usize>, bool)] = &[
        ("mode", 100..108, false),
        ("uid", 108..116, true),
        ("gid", 116..124, true),
        ("size", 124..136, true),
        ("mtime", 136..148, true),
        ("checksum", 148..156, false),
        ("devmajor", 329..337, false),
        ("devminor", 337..345, false),
    ];
    for (name, range, base256) in FIELDS {
        number(&header[range.clone()], *base256).map_err(|_| {
            format!("a header whose {name} field is not a plain octal number; readers read it differently")
        })?;
    }
    Ok(())
}

/// One numeric header field as every reader reads it (see [`check_numbers`]).
fn number(field: &[u8], base256: bool) -> Result<u64, String> {
    let odd = || "a numeric header field readers read differently".to_owned();
    if field.first() == Some(&0x80) && base256 {
        let mut value: u64 = 0;
        for b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*b)))
                .ok_or_else(odd)?;
        }
        return Ok(value);
    }
    let start = field.iter().position(|b| *b != b' ').unwrap_or(field.len());
    let digits = field[start..]
        .iter()
        .position(|b| !(b'0'..=b'7').contains(b))
        .map_or(field.len(), |n| start + n);
    if field[digits..].iter().any(|b| *b != b' ' && *b != 0) {
        return Err(odd());
    }
    let text = std::str::from_utf8(&field[start..digits]).map_err(|_| odd())?;
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| odd())
}

/// PAX records laid out as every reader reads them: `LENGTH KEY=VALUE\n`, the length in
/// plain decimal digits (Rust's and Python's parsers also take a `+`, Go does not) and
/// exactly the record's length, back to back to the end of the data.
fn check_pax_layout(mut data: &[u8]) -> Result<(), String> {
    let odd = || "PAX records laid out so that readers may read them differently".to_owned();
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ').ok_or_else(odd)?;
        let digits = &data[..space];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(odd());
        }
        let length: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(odd)?;
        let record = data.get(..length).ok_or_else(odd)?;
        if length <= space + 1 || record.last() != Some(&b'\n') || !record.contains(&b'=') {
            return Err(odd());
        }
        data = &data[length..];
    }
    Ok(())
}

/// Refuses the rest of `input` unless it is empty: a second gzip member, a second zstd
/// frame (or a skippable one), or any trailing byte after the compressed stream.
fn nothing_after(layer: &str, what: &str, input: &mut dyn Read) -> Result<(), OciError> {
    let mut byte = [0u8; 1];
    match input.read(&mut byte) {
        Ok(0) => Ok(()),
        Ok(_) => Err(OciError::Layer {
            layer: layer.to_owned(),
            problem: format!(
                "data after {what} (another member or frame, which other readers unpack too); a layer is one compressed stream"
            ),
        }),
        Err(e) => Err(crate::from_io(e, &format!("layer {layer}"))),
    }
}

/// PAX records modelseal reads as the `tar` crate does and every other reader agrees
/// on: the name and size (which the `tar` crate applies) and metadata that changes no
/// name or byte. Any other record (sparse maps, link names, charset switches, vendor
/// extensions) and any record given twice is refused: readers differ on them (Go and
/// Python take the last of a repeated record, the `tar` crate the first).
const PAX_KEYS_READ: &[&str] = &[
    "path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname",
];

fn check_pax<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<(), String> {
    let Some(records) = entry
        .pax_extensions()
        .map_err(|e| format!("unreadable PAX records: {e}"))?
    else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    let mut pax_path = None;
    let mut pax_size = None;
    for record in records {
        let record = record.map_err(|e| format!("malformed PAX record: {e}"))?;
        let key = record
            .key()
            .map_err(|_| "a PAX record whose key is not UTF-8".to_owned())?;
        if !PAX_KEYS_READ.contains(&key) {
            return Err(format!(
                "a PAX {key:?} record, which modelseal does not interpret; model layers carry plain files"
            ));
        }
        if !seen.insert(key.to_owned()) {
            return Err(format!(
                "a PAX {key:?} record given twice (readers disagree on which one counts)"
            ));
        }
        let value = record.value_bytes();
        // Numbers as every reader parses them: a size of "-0" or "+1024" is no number
        // to the `tar` crate (which then keeps the header's size) but one to Go, Python
        // or GNU tar, which then find other entries in the data.
        let plain = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
        let time = {
            let v = value.strip_prefix(b"-").unwrap_or(value);
            let (whole, fraction) = match v.iter().position(|b| *b == b'.') {
                Some(dot) => (&v[..dot], Some(&v[dot + 1..])),
                None => (v, None),
            };
            !whole.is_empty()
                && whole.iter().all(u8::is_ascii_digit)
                && fraction.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
        };
        let well_formed = match key {
            "size" | "uid" | "gid" => plain,
            "mtime" | "atime" | "ctime" => time,
            _ => std::str::from_utf8(value).is_ok(),
        };
        if !well_formed {
            return Err(format!(
                "a PAX {key:?} record whose value {:?} readers read differently",
                String::from_utf8_lossy(&value[..value.len().min(40)])
            ));
        }
        if key == "path" {
            pax_path = Some(value.to_vec());
        }
        if key == "size" {
            pax_size = Some(
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok()),
            );
        }
    }
    // A size the `tar` crate could not read (beyond 64 bits) is one it silently
    // replaces by the header's.
    if let Some(size) = pax_size
        && size != Some(entry.size())
    {
        return Err("a PAX size record that is not the size the entry is read with".into());
    }
    // The `tar` crate lets a GNU long name win over a PAX path, Go and Python the
    // reverse: both on one entry must name the same file.
    if let Some(pax_path) = pax_path {
        let used = entry.path_bytes();
        if *used != *pax_path {
            return Err(format!(
                "a PAX path {:?} and a GNU long name {:?} on one entry; readers disagree on which counts",
                String::from_utf8_lossy(&pax_path),
                String::from_utf8_lossy(&used)
            ));
        }
    }
    Ok(())
}

/// `./a/b/` → `a/b`: the spellings tar writers use for the same name.
fn normalize(raw: &str) -> String {
    let mut s = raw;
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    if s == "." {
        return String::new();
    }
    s.trim_end_matches('/').to_owned()
}

fn parse_path(name: &str) -> Result<ManifestPath, String> {
    ManifestPath::parse(name).map_err(|e| format!("entry {name:?} cannot be a model file: {e}"))
}

/// Creates `dir/path` (and its parents) as a new file. `dir` is a fresh directory this
/// process made and `path` a checked relative path, so nothing can lead outside it.
fn create_file(dir: &Path, path: &ManifestPath) -> Result<std::fs::File, OciError> {
    let target = path.to_fs_path(dir);
    let write_err = |source| OciError::Write {
        path: path.to_string(),
        source,
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(write_err)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("../../etc/passwd").unwrap();
            }
            // Bypass the builder's own path checks: hostile archives are the point.
            let bytes = header.as_old_mut();
            bytes.name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn unpack(layers: &[Vec<u8>]) -> Result<Vec<ManifestEntry>, OciError> {
        let mut u = Unpacker::new(None, UnpackLimits::default());
        for (i, layer) in layers.iter().enumerate() {
            u.layer(
                &i.to_string(),
                &LayerFormat::Tar,
                layer.len() as u64,
                &mut &layer[..],
            )?;
        }
        Ok(u.entries)
    }

    #[test]
    fn files_hash_like_b3sum_and_directories_are_skipped() {
        let layer = tar_of(&[
            ("./", tar::EntryType::Directory, b""),
            ("./w/", tar::EntryType::Directory, b""),
            ("./w/a.bin", tar::EntryType::Regular, b"hello"),
        ]);
        let entries = unpack(&[layer]).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].path.as_str(), "w/a.bin");
        assert_eq!(
            entries[0].blake3.to_hex(),
            blake3::hash(b"hello").to_hex().as_str()
        );
    }

    #[test]
    fn hostile_layers_are_refused_each_by_its_own_reason() {
        let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
            (
                vec![tar_of(&[("../x", tar::EntryType::Regular, b"x")])],
                "climbs out",
            ),
            (
                vec![tar_of(&[("/etc/x", tar::EntryType::Regular, b"x")])],
                "absolute",
            ),
            (
                vec![tar_of(&[("a/../../x", tar::EntryType::Regular, b"x")])],
                "climbs out",
            ),
            (
                vec![tar_of(&[("l", tar::EntryType::Symlink, b"")])],
                "is a link",
            ),
            (
                vec![tar_of(&[("h", tar::EntryType::Link, b"")])],
                "is a link",
            ),
            (
                vec![tar_of(&[("d", tar::EntryType::Char, b"")])],
                "not a regular file",
            ),
            (
                vec![tar_of(&[("p", tar::EntryType::Fifo, b"")])],
                "not a regular file",
            ),
            // The differential harness (tests/formats): GNU tar and Python read a
            // contiguous file (`7`) as a file, containerd refuses the layer; GNU tar
            // refuses an empty stream, Go reads no files from it.
            (
                vec![tar_of(&[("c", tar::EntryType::Continuous, b"x")])],
                "tar type '7'",
            ),
            (vec![Vec::new()], "an empty stream"),
            (
                vec![tar_of(&[("a/.wh.b", tar::EntryType::Regular, b"")])],
                "whiteout",
            ),
            (
                vec![
                    tar_of(&[("a", tar::EntryType::Regular, b"1")]),
                    tar_of(&[("./a", tar::EntryType::Regular, b"2")]),
                ],
                "appears twice",
            ),
            (
                vec![b"not a tar archive at all, but long enough to look at".repeat(20)],
                "tar",
            ),
        ];
        for (layers, want) in cases {
            let err = unpack(&layers).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
            assert_eq!(err.kind(), "bad-layer", "{err}");
        }
    }

    /// A tar holding `entries` without its end-of-archive blocks, as the first part of a
    /// layer whose second part adds more (the attack: the runtime reads both parts).
    fn tar_without_end(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut whole = tar_of(entries);
        while whole.len() >= 512 && whole[whole.len() - 512..].iter().all(|b| *b == 0) {
            whole.truncate(whole.len() - 512);
        }
        whole
    }

    fn layer_of(format: &LayerFormat, data: &[u8]) -> Result<Vec<ManifestEntry>, OciError> {
        let mut u = Unpacker::new(None, UnpackLimits::default());
        u.layer("l", format, data.len() as u64, &mut &data[..])?;
        Ok(u.entries)
    }

    #[test]
    fn a_second_gzip_member_or_zstd_frame_is_refused() {
        // Failed on main: only the first member or frame was unpacked and signed, while
        // GNU tar, Go and Python unpack the evil.py in the second.
        use flate2::write::GzEncoder;
        let first = tar_without_end(&[("config.json", tar::EntryType::Regular, b"{}")]);
        let second = tar_of(&[("evil.py", tar::EntryType::Regular, b"import os")]);
        let gz = |data: &[u8]| {
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(data).unwrap();
            gz.finish().unwrap()
        };
        let zst = |data: &[u8]| {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        };
        let whole = [first.clone(), second.clone()].concat();
        assert_eq!(
            layer_of(&LayerFormat::TarGzip, &gz(&whole)).unwrap().len(),
            2
        );
        assert_eq!(
            layer_of(&LayerFormat::TarZstd, &zst(&whole)).unwrap().len(),
            2
        );
        for (format, layer) in [
            (LayerFormat::TarGzip, [gz(&first), gz(&second)].concat()),
            (LayerFormat::TarZstd, [zst(&first), zst(&second)].concat()),
            (
                LayerFormat::TarGzip,
                [gz(&whole), b"junk".to_vec()].concat(),
            ),
        ] {
            let err = layer_of(&format, &layer).unwrap_err();
            assert!(err.to_string().contains("data after"), "{format:?}: {err}");
        }
    }

    #[test]
    fn anything_after_the_end_of_archive_blocks_is_refused() {
        let mut layer = tar_of(&[("config.json", tar::EntryType::Regular, b"{}")]);
        assert_eq!(layer_of(&LayerFormat::Tar, &layer).unwrap().len(), 1);
        // `tar --ignore-zeros` and concatenated archives read on past the end marker.
        layer.extend(tar_of(&[(
            "evil.py",
            tar::EntryType::Regular,
            b"import os",
        )]));
        let err = layer_of(&LayerFormat::Tar, &layer).unwrap_err();
        assert!(err.to_string().contains("end-of-archive"), "{err}");
    }

    /// A tar whose one file is preceded by a PAX header holding `records`.
    fn pax_tar(records: &[(&str, &str)], name: &str, data: &[u8]) -> Vec<u8> {
        let body: Vec<u8> = records
            .iter()
            .flat_map(|(k, v)| {
                let text = format!(" {k}={v}\n");
                // The record's length counts its own digits.
                let mut len = text.len() + 1;
                while format!("{len}{text}").len() != len {
                    len += 1;
                }
                format!("{len}{text}").into_bytes()
            })
            .collect();
        let mut out = Vec::new();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_size(body.len() as u64);
        header.set_path("PaxHeader").unwrap();
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&body);
        out.resize(out.len().div_ceil(512) * 512, 0);
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_path(name).unwrap();
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    }

    #[test]
    fn pax_records_are_read_only_when_every_reader_agrees_on_them() {
        let ok = pax_tar(&[("path", "weights.bin"), ("mtime", "1.5")], "x", b"w");
        let entries = layer_of(&LayerFormat::Tar, &ok).unwrap();
        assert_eq!(entries[0].path.as_str(), "weights.bin");
        for (records, want) in [
            (
                &[("path", "weights.bin"), ("path", "notes.txt")][..],
                "given twice",
            ),
            (&[("size", "1"), ("size", "1")][..], "given twice"),
            (&[("GNU.sparse.name", "evil.py")][..], "does not interpret"),
            (&[("linkpath", "x")][..], "does not interpret"),
        ] {
            let err = layer_of(&LayerFormat::Tar, &pax_tar(records, "x", b"w")).unwrap_err();
            assert!(err.to_string().contains(want), "{records:?}: {err}");
        }
    }

    #[test]
    fn names_readers_build_differently_are_refused() {
        // Found by the third attack review; each passed on main.
        // A GNU header with text where ustar keeps the prefix: Go (the times do not parse
        // as octal) and Python read "models/config.json", the tar crate "config.json".
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(1);
        header.set_path("config.json").unwrap();
        let mut raw: [u8; 512] = *header.as_bytes();
        raw[345..351].copy_from_slice(b"models");
        let mut header = tar::Header::from_byte_slice(&raw).clone();
        header.set_cksum();
        let mut gnu = header.as_bytes().to_vec();
        gnu.extend_from_slice(b"x");
        gnu.resize(512 * 4, 0);
        let err = layer_of(&LayerFormat::Tar, &gnu).unwrap_err();
        assert!(err.to_string().contains("access or change times"), "{err}");

        // An old-style regular entry named "d/" and renamed by a PAX path: Python keeps
        // the directory type its own header name gave it.
        let renamed = pax_tar(&[("path", "weights.bin")], "d/", b"w");
        let err = layer_of(&LayerFormat::Tar, &renamed).unwrap_err();
        assert!(err.to_string().contains("named as a directory"), "{err}");

        // A PAX path and a GNU long name on one entry: the tar crate takes the long name,
        // Go and Python the PAX path.
        let long = "a".repeat(120) + ".json";
        let mut both = pax_tar(&[("path", "evil.py")], "x", b"w");
        let file_at = 1024; // after the PAX header and its one block of records
        let mut long_header = tar::Header::new_gnu();
        long_header.set_entry_type(tar::EntryType::GNULongName);
        long_header.set_size(long.len() as u64 + 1);
        long_header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        long_header.set_cksum();
        let mut inserted = long_header.as_bytes().to_vec();
        inserted.extend_from_slice(long.as_bytes());
        inserted.push(0);
        inserted.resize(inserted.len().div_ceil(512) * 512, 0);
        both.splice(file_at..file_at, inserted);
        let err = layer_of(&LayerFormat::Tar, &both).unwrap_err();
        assert!(err.to_string().contains("GNU long name"), "{err}");
        // The same long name with no PAX path is read.
        let mut only_long = Vec::new();
        let plain = pax_tar(&[("mtime", "1")], "x", b"w");
        only_long.extend_from_slice(&plain[..file_at]);
        let mut long_header = tar::Header::new_gnu();
        long_header.set_entry_type(tar::EntryType::GNULongName);
        long_header.set_size(long.len() as u64 + 1);
        long_header.set_cksum();
        only_long.extend_from_slice(long_header.as_bytes());
        let mut name = long.as_bytes().to_vec();
        name.push(0);
        name.resize(512, 0);
        only_long.extend(name);
        only_long.extend_from_slice(&plain[file_at..]);
        let entries = layer_of(&LayerFormat::Tar, &only_long).unwrap();
        assert_eq!(entries[0].path.as_str(), long);
    }

    #[test]
    fn extension_records_readers_cut_differently_are_refused() {
        // Third attack review (each passed on main): GNU tar and Python read a long name
        // up to its NUL whatever its declared size; Python reads PAX records on into the
        // padding; so a record's bytes past its size must be zeros.
        let long = |declared: &[u8], block: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::GNULongName);
            h.set_size(declared.len() as u64);
            h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            h.set_cksum();
            let mut out = h.as_bytes().to_vec();
            let mut data = block.to_vec();
            data.resize(512, 0);
            out.extend(data);
            out.extend(tar_of(&[("model", tar::EntryType::Regular, b"w")]));
            out
        };
        // As the review built it: the rest of the name in the padding.
        let err = layer_of(&LayerFormat::Tar, &long(b"model", b"model.safetensors\0")).unwrap_err();
        assert!(err.to_string().contains("padding"), "{err}");
        // A name without its NUL: Python and GNU tar read on to the next NUL.
        let err = layer_of(&LayerFormat::Tar, &long(b"model", b"model")).unwrap_err();
        assert!(err.to_string().contains("GNU long name"), "{err}");
        let ok = long(b"model\0", b"model\0");
        assert_eq!(
            layer_of(&LayerFormat::Tar, &ok).unwrap()[0].path.as_str(),
            "model"
        );

        // A PAX record hidden in the padding after the declared records.
        let mut hidden = pax_tar(&[("mtime", "1")], "x", b"w");
        let record = b"26 path=model.safetensors\n";
        let end = 512 + hidden[512..1024].iter().position(|b| *b == 0).unwrap();
        hidden[end..end + record.len()].copy_from_slice(record);
        let err = layer_of(&LayerFormat::Tar, &hidden).unwrap_err();
        assert!(
            err.to_string().contains("padding of an extension record"),
            "{err}"
        );

        // A file's own padding holding bytes.
        let mut padded = tar_of(&[
            ("a", tar::EntryType::Regular, b"w"),
            ("b", tar::EntryType::Regular, b"v"),
        ]);
        padded[512 + 1] = b'x';
        let err = layer_of(&LayerFormat::Tar, &padded).unwrap_err();
        assert!(err.to_string().contains("file's padding"), "{err}");
        let mut last = tar_of(&[("a", tar::EntryType::Regular, b"w")]);
        last[512 + 1] = b'x';
        let err = layer_of(&LayerFormat::Tar, &last).unwrap_err();
        assert!(err.to_string().contains("end-of-archive"), "{err}");
    }

    /// A tar of one ustar header (then `edit` applied) with `data`, and a file after it.
    fn tar_with_header(
        name: &str,
        kind: tar::EntryType,
        data: &[u8],
        edit: impl Fn(&mut [u8; 512]),
    ) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_path(name).unwrap();
        let mut raw: [u8; 512] = *header.as_bytes();
        edit(&mut raw);
        let header = tar::Header::from_byte_slice(&raw);
        let mut header = header.clone();
        header.set_cksum();
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend(tar_of(&[("config.json", tar::EntryType::Regular, b"{}")]));
        out
    }

    #[test]
    fn headers_readers_read_differently_are_refused() {
        // Found by the second attack review; each passed on main.
        let hidden = tar_of(&[("modeling_evil.py", tar::EntryType::Regular, b"import os")]);
        let hidden = &hidden[..1024];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // The `tar` crate skipped a directory's "data"; runtimes read a header there.
            (
                tar_with_header("d/", tar::EntryType::Directory, hidden, |_| {}),
                "directory entry with 1024 bytes",
            ),
            // A file named like a directory: a directory to Go and Python.
            (
                tar_with_header("d/", tar::EntryType::Regular, hidden, |_| {}),
                "named as a directory",
            ),
            // ustar with version "\0\0": the prefix is applied by everyone but the tar crate.
            (
                tar_with_header("config.json", tar::EntryType::Regular, b"x", |h| {
                    h[263..265].copy_from_slice(b"\0\0");
                    h[345..351].copy_from_slice(b"models");
                }),
                "version is not",
            ),
            // A STAR trailer.
            (
                tar_with_header("config.json", tar::EntryType::Regular, b"x", |h| {
                    h[508..512].copy_from_slice(b"tar\0");
                }),
                "STAR header",
            ),
            // A pre-POSIX header with a prefix: Python applies it.
            (
                tar_with_header("config.json", tar::EntryType::Regular, b"x", |h| {
                    h[257..265].fill(0);
                    h[345..351].copy_from_slice(b"models");
                }),
                "pre-POSIX header",
            ),
        ];
        for (layer, want) in cases {
            let err = layer_of(&LayerFormat::Tar, &layer).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        // A later layer's directory at a file's path (a runtime replaces the file).
        let err = unpack(&[
            tar_of(&[("m/gen.json", tar::EntryType::Regular, b"{}")]),
            tar_of(&[("m/gen.json/", tar::EntryType::Directory, b"")]),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("a directory here and a file elsewhere"),
            "{err}"
        );
    }

    #[test]
    fn a_plain_layer_that_is_also_a_compressed_stream_is_refused() {
        use flate2::write::GzEncoder;
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar_of(&[("evil.py", tar::EntryType::Regular, b"x")]))
            .unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            &b"x"[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (bytes, kind) in [(gz, "gzip"), (zst, "zstd")] {
            let err = layer_of(&LayerFormat::Tar, &bytes).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("start as a {kind} stream")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_raw_layer_whose_title_names_another_file_is_refused() {
        let annotations: std::collections::HashMap<String, String> = [
            (MODELPACK_FILEPATH.to_owned(), "config.json".to_owned()),
            (OCI_TITLE.to_owned(), "notes/config.json".to_owned()),
        ]
        .into();
        let err = layer_format(
            "application/vnd.cncf.model.weight.v1.raw",
            Some(&annotations),
            "l",
        )
        .unwrap_err();
        assert!(err.to_string().contains("readers disagree"), "{err}");
        let same: std::collections::HashMap<String, String> = [
            (MODELPACK_FILEPATH.to_owned(), "config.json".to_owned()),
            (OCI_TITLE.to_owned(), "config.json".to_owned()),
        ]
        .into();
        assert!(layer_format("application/vnd.cncf.model.weight.v1.raw", Some(&same), "l").is_ok());
        // Sixth attack review (a suspicion, from ORAS's documented behaviour): ORAS
        // unpacks a layer with its unpack annotation as an archive.
        let mut oras = same.clone();
        oras.insert(ORAS_UNPACK.to_owned(), "true".to_owned());
        let err =
            layer_format("application/vnd.cncf.model.weight.v1.raw", Some(&oras), "l").unwrap_err();
        assert!(err.to_string().contains("ORAS unpacks"), "{err}");
    }

    #[test]
    fn a_pax_size_other_readers_read_as_another_number_is_refused() {
        // Sixth attack review: `size=-0` is no number to the `tar` crate, which keeps the
        // header's 1024 and hashes a "file" that Go, Python and GNU tar read as an empty
        // one followed by a hidden model.safetensors.
        let hidden = tar_without_end(&[("model.safetensors", tar::EntryType::Regular, b"EVIL")]);
        for spelling in ["-0", "+1024", " 1024", "0x400", "1_024", "", "1024.0"] {
            let record = format!(" size={spelling}\n");
            let mut length = record.len() + 2;
            if format!("{length}{record}").len() != length {
                length += 1;
            }
            let pax = format!("{length}{record}");
            let mut layer = Vec::new();
            let mut header = tar::Header::new_ustar();
            header.set_path("PaxHeader").unwrap();
            header.set_size(pax.len() as u64);
            header.set_entry_type(tar::EntryType::XHeader);
            header.set_cksum();
            layer.extend_from_slice(header.as_bytes());
            layer.extend_from_slice(pax.as_bytes());
            layer.resize(layer.len().div_ceil(512) * 512, 0);
            let notes = tar_of(&[("notes.bin", tar::EntryType::Regular, &hidden)]);
            layer.extend_from_slice(&notes);
            let err = unpack(&[layer]).unwrap_err();
            assert!(err.to_string().contains("readers"), "{spelling:?}: {err}");
        }
    }

    #[test]
    fn a_gzip_bomb_ends_at_its_budget() {
        use flate2::write::GzEncoder;
        let big = tar_of(&[("z", tar::EntryType::Regular, &vec![0u8; 8 << 20])]);
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&big).unwrap();
        let gz = gz.finish().unwrap();
        let mut u = Unpacker::new(
            None,
            UnpackLimits {
                max_files: 10,
                max_expansion: 2,
            },
        );
        // The budget is 2x + 64 MiB; shrink the stream's claimed size to make 8 MiB a bomb.
        let err = u
            .layer("g", &LayerFormat::TarGzip, 0, &mut &gz[..])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_none(), "8 MiB is within the 64 MiB floor: {err:?}");
        let mut u = Unpacker::new(
            None,
            UnpackLimits {
                max_files: 10,
                max_expansion: 0,
            },
        );
        let huge = tar_of(&[("z", tar::EntryType::Regular, &vec![0u8; 65 << 20])]);
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&huge).unwrap();
        let gz = gz.finish().unwrap();
        let err = u
            .layer("g", &LayerFormat::TarGzip, gz.len() as u64, &mut &gz[..])
            .unwrap_err();
        assert!(
            err.to_string().contains("beyond the layer's budget"),
            "{err}"
        );
    }

    /// A PAX record or a directory's data is read whole by the tar reader: it is bounded
    /// before it is read, so a huge one ends the layer instead of filling memory.
    #[test]
    fn huge_metadata_between_files_is_refused_before_it_is_read() {
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(3 << 20);
        pax.set_cksum();
        let mut raw = pax.as_bytes().to_vec();
        raw.extend(std::iter::repeat_n(b'a', 3 << 20));
        let err = unpack(&[raw]).unwrap_err();
        assert!(err.to_string().contains("archive metadata"), "{err}");
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_path("d/").unwrap();
        dir.set_size(2 << 20);
        dir.set_cksum();
        let mut raw = dir.as_bytes().to_vec();
        raw.extend(std::iter::repeat_n(0u8, 2 << 20));
        // A directory with data is refused at its header, before any of it is read.
        let err = unpack(&[raw]).unwrap_err();
        assert!(
            err.to_string()
                .contains("a directory entry with 2097152 bytes"),
            "{err}"
        );
    }

    #[test]
    fn media_types() {
        let layer = "sha256:0";
        assert_eq!(
            layer_format("application/vnd.oci.image.layer.v1.tar+gzip", None, layer).unwrap(),
            LayerFormat::TarGzip
        );
        assert_eq!(
            layer_format("application/vnd.cncf.model.weight.v1.tar", None, layer).unwrap(),
            LayerFormat::Tar
        );
        let mut a = std::collections::HashMap::new();
        a.insert(MODELPACK_FILEPATH.to_owned(), "w/model.bin".to_owned());
        assert_eq!(
            layer_format("application/vnd.cncf.model.weight.v1.raw", Some(&a), layer).unwrap(),
            LayerFormat::Raw(ManifestPath::parse("w/model.bin").unwrap())
        );
        a.insert(MODELPACK_FILEPATH.to_owned(), "../x".to_owned());
        assert!(layer_format("application/vnd.cncf.model.weight.v1.raw", Some(&a), layer).is_err());
        for bad in [
            "application/vnd.cncf.model.weight.v1.raw",
            "application/octet-stream",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+lz4",
            "application/vnd.oci.image.config.v1+json",
        ] {
            assert!(layer_format(bad, None, layer).is_err(), "{bad}");
        }
        // Third attack review (each read differently by CRI-O or Podman, passed on main):
        // a raw media type that also names an archive, and a titled archive layer.
        let mut a = std::collections::HashMap::new();
        a.insert(
            MODELPACK_FILEPATH.to_owned(),
            "model.safetensors".to_owned(),
        );
        for two in [
            "application/vnd.cncf.model.weight.v1.tar.raw",
            "application/vnd.cncf.model.weight.v1.tar+gzip.raw",
        ] {
            let err = layer_format(two, Some(&a), layer).unwrap_err();
            assert!(
                err.to_string().contains("a raw file and an archive"),
                "{err}"
            );
        }
        a.insert(OCI_TITLE.to_owned(), "model.safetensors".to_owned());
        let err =
            layer_format("application/vnd.cncf.model.weight.v1.tar", Some(&a), layer).unwrap_err();
        assert!(err.to_string().contains("artifact mounts"), "{err}");
        assert!(layer_format("application/vnd.cncf.model.weight.v1.raw", Some(&a), layer).is_ok());
    }
}
