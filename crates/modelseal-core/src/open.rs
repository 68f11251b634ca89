//! Opening a model file for reading, race-free: the walk classified an entry, and by the
//! time it is read it may have been swapped for a link, a FIFO or another file. Each file
//! is opened without following a link at its last component and without blocking, then
//! checked (by `fstat` on the open descriptor) to be a regular file and, when the walk
//! recorded one, the very file the walk saw (device and inode). Whatever is read after
//! that comes from the checked descriptor, never from the path again.

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// A file's identity on its filesystem: device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity in `meta` (from `lstat`, `stat` or `fstat`).
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Why an opened path is not the file expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotTheFile {
    /// A symbolic link now stands where a file was.
    #[error("it is now a symbolic link")]
    Link,
    /// A FIFO, socket, device or directory now stands where a file was.
    #[error("it is no longer a regular file")]
    NotRegular,
    /// Another regular file now stands where the walked one was.
    #[error("it is another file than the one listed (replaced)")]
    Replaced,
}

/// Opens `path` for reading as described above. The outer error is the open itself
/// failing; the inner one says the path no longer leads to the expected file.
pub fn open_checked(path: &Path, expected: Option<FileId>) -> io::Result<Result<File, NotTheFile>> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        // O_NOFOLLOW on a link fails with ELOOP.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Err(NotTheFile::Link)),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Err(NotTheFile::NotRegular));
    }
    if expected.is_some_and(|id| id != FileId::of(&meta)) {
        return Ok(Err(NotTheFile::Replaced));
    }
    Ok(Ok(file))
}

/// Opens a sidecar file (an outboard) for reading, following links (the sidecar's
/// directory is the caller's choice) but never blocking on a FIFO. `Ok(None)` when nothing
/// is there; an error when something other than a regular file is.
pub fn open_sidecar(path: &Path) -> io::Result<Option<File>> {
    match open_regular(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens a file someone else may have put there (a signature, a sidecar) for reading,
/// following links but never blocking: a FIFO or device in its place would otherwise
/// hang the open, and with it a verifier or a watch, until a writer came.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Reads a whole text file someone else may have put there (a key, a policy, a trusted
/// root) as [`open_regular`] opens it: a FIFO in its place is refused, not waited on.
pub fn read_regular_to_string(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    open_regular(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// [`read_regular_to_string`] for bytes.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    open_regular(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Asks the kernel to start reading `len` bytes of `file` from `start` into the page
/// cache (`POSIX_FADV_WILLNEED`): a large read cut into pieces for several cores then
/// streams from a cold disk instead of seeking between the pieces. Only a hint: a
/// failure is ignored, and on targets without the call (macOS) it does nothing.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub fn read_ahead(file: &File, start: u64, len: u64) {
    use std::os::fd::AsRawFd as _;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(start), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: one syscall on a descriptor borrowed for the call; it reads no memory of
    // ours and its result is deliberately ignored.
    #[allow(unsafe_code)]
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED);
    }
}

/// See above: no read-ahead hint on this target.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub fn read_ahead(_file: &File, _start: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_replaced_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.bin");
        std::fs::write(&file, b"weights").unwrap();
        let id = FileId::of(&std::fs::symlink_metadata(&file).unwrap());
        assert!(open_checked(&file, Some(id)).unwrap().is_ok());
        // Replaced by another file under the same name.
        std::fs::write(dir.path().join("other"), b"weights").unwrap();
        std::fs::rename(dir.path().join("other"), &file).unwrap();
        assert_eq!(
            open_checked(&file, Some(id)).unwrap().unwrap_err(),
            NotTheFile::Replaced
        );
        // A link to a good file is refused, not followed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            open_checked(&link, None).unwrap().unwrap_err(),
            NotTheFile::Link
        );
        // A FIFO: refused at once, without waiting for a writer.
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            open_checked(&fifo, None).unwrap().unwrap_err(),
            NotTheFile::NotRegular
        );
        // A missing file is an I/O error, not a verdict.
        assert!(open_checked(&dir.path().join("absent"), None).is_err());
    }
}
