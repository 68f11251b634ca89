//! File leases (`fcntl(F_SETLEASE, F_RDLCK)`, Linux): what timestamps cannot tell. The
//! kernel grants a read lease on a file only while no process has it open for writing
//! and no process holds a writable shared mapping of it (even one whose descriptor was
//! closed). Once granted, any process that opens the file for writing or truncates it
//! (under any name: the lease is on the inode) is held in `open` until the holder lets
//! go, and the holder is sent `SIGIO`. So while watch holds a lease on a signed file,
//! nothing can write it, and a writer that comes along is reported before its first
//! write: watch marks the file changed, then releases the lease, then the writer's
//! `open` returns.
//!
//! Leases need a local filesystem that supports them (ext4, xfs, btrfs, tmpfs do) and
//! either ownership of the file (the process's filesystem user is the file's owner) or
//! `CAP_LEASE`. Without them watch fails closed (the file is refused, naming why) unless
//! leases were turned off (`--no-leases`: the timestamp-only mode of `spec/watch.md`).

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Why a lease could not be held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseError {
    /// A process has the file open for writing or mapped writable.
    Writer,
    /// The filesystem, the file's owner or the open-file limit does not allow one.
    Unavailable(String),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Writer => f.write_str(
                "a process holds it open for writing or mapped writable (no file lease can be taken)",
            ),
            Self::Unavailable(why) => write!(f, "cannot take a file lease on it: {why}"),
        }
    }
}

/// A lease held on the file a key's path named when it was taken.
struct Held {
    file: File,
    dev: u64,
    ino: u64,
    path: PathBuf,
}

/// The leases of the signed files, and the keys waiting for one because a writer held
/// the file when it was asked for.
pub(crate) struct Leases {
    held: Mutex<HashMap<String, Held>>,
    waiting: Mutex<HashMap<String, PathBuf>>,
    /// Written to (one byte per signal) by the `SIGIO` handler.
    signals: Mutex<File>,
}

impl Leases {
    /// Installs the `SIGIO` handler (before any lease exists: the default action of
    /// `SIGIO` ends the process) and raises the open-file limit to its hard limit, since
    /// each lease keeps its file open.
    pub(crate) fn new() -> std::io::Result<Self> {
        let (reader, writer) = std::io::pipe()?;
        signal_hook::low_level::pipe::register(libc::SIGIO, OwnedFd::from(writer))?;
        let reader = File::from(OwnedFd::from(reader));
        set_nonblocking(&reader)?;
        raise_open_file_limit();
        Ok(Self {
            held: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            signals: Mutex::new(reader),
        })
    }

    /// Holds a lease on the file `path` names now (following links) for `key`, keeping
    /// one already held on that same file. Returns the file's device and inode: the
    /// caller must check that the bytes it reads are that file's.
    pub(crate) fn hold(&self, key: &str, path: &Path) -> Result<(u64, u64), LeaseError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| LeaseError::Unavailable(format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(LeaseError::Unavailable("not a regular file".into()));
        }
        let mut held = lock(&self.held);
        if let Some(lease) = held.get(key) {
            let same = (lease.dev, lease.ino) == (meta.dev(), meta.ino());
            match lease_type(&lease.file) {
                Some(libc::F_RDLCK) if same => return Ok((lease.dev, lease.ino)),
                // Another file has the name now: its lease is taken below.
                Some(libc::F_RDLCK) => {
                    held.remove(key);
                }
                // Being broken: a writer is waiting in `open`. Dropping the lease here
                // would let it through unreported; the kernel thread reports, then lets go.
                _ => return Err(LeaseError::Writer),
            }
        }
        // Non-blocking: a FIFO swapped in after the check above would otherwise hold this
        // thread in `open` for as long as nobody writes to it.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => LeaseError::Unavailable(format!(
                "too many open files ({e}): each signed file keeps one open; raise the limit (ulimit -n) above the number of signed files"
            )),
            _ => LeaseError::Unavailable(format!("{}: {e}", path.display())),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| LeaseError::Unavailable(e.to_string()))?;
        if !meta.is_file() {
            return Err(LeaseError::Unavailable("not a regular file".into()));
        }
        // SAFETY: fcntl on a descriptor this function owns, with integer arguments.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EAGAIN) => {
                    lock(&self.waiting).insert(key.to_owned(), path.to_owned());
                    LeaseError::Writer
                }
                Some(libc::EACCES | libc::EPERM) => LeaseError::Unavailable(format!(
                    "{err}: run watch as the files' owner or with CAP_LEASE, or pass --no-leases for the timestamp-only mode"
                )),
                _ => LeaseError::Unavailable(format!(
                    "{err}: the filesystem may not support leases; pass --no-leases for the timestamp-only mode"
                )),
            });
        }
        let ids = (meta.dev(), meta.ino());
        held.insert(
            key.to_owned(),
            Held {
                file,
                dev: ids.0,
                ino: ids.1,
                path: path.to_owned(),
            },
        );
        lock(&self.waiting).remove(key);
        Ok(ids)
    }

    /// The descriptor the `SIGIO` handler writes to, for `poll`.
    pub(crate) fn signal_fd(&self) -> i32 {
        lock(&self.signals).as_raw_fd()
    }

    /// After a signal: the keys whose lease a writer is breaking. Drains the signal pipe
    /// and asks each lease its state (a lease being broken reads as unlocked). The
    /// caller marks them changed and then calls [`Leases::release`].
    pub(crate) fn breaking(&self) -> Vec<String> {
        let mut buf = [0u8; 256];
        while matches!(lock(&self.signals).read(&mut buf), Ok(n) if n > 0) {}
        lock(&self.held)
            .iter()
            .filter(|(_, lease)| lease_type(&lease.file) != Some(libc::F_RDLCK))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Lets go of `key`'s lease (the writer's `open` returns) and waits for the file to
    /// have no writer again.
    pub(crate) fn release(&self, key: &str) {
        let lease = lock(&self.held).remove(key);
        if let Some(lease) = lease {
            // SAFETY: fcntl on a descriptor owned by `lease`, with integer arguments.
            unsafe { libc::fcntl(lease.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
            lock(&self.waiting).insert(key.to_owned(), lease.path);
        }
    }

    /// The waiting keys whose file now has no writer: each is leased again and returned,
    /// for the caller to check afresh.
    pub(crate) fn retry(&self) -> Vec<String> {
        let waiting: Vec<(String, PathBuf)> = lock(&self.waiting)
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        waiting
            .into_iter()
            .filter(|(key, path)| self.hold(key, path).is_ok())
            .map(|(key, _)| key)
            .collect()
    }

    /// Drops the leases of keys that are no longer signed files.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        lock(&self.held).retain(|key, _| keep(key));
        lock(&self.waiting).retain(|key, _| keep(key));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lease `file` holds now: `F_RDLCK` while it stands, `F_UNLCK` while a writer is
/// breaking it or after it was lost.
fn lease_type(file: &File) -> Option<i32> {
    // SAFETY: fcntl on a descriptor `file` owns, with no argument.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLEASE) };
    (rc >= 0).then_some(rc)
}

fn set_nonblocking(file: &File) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor `file` owns, with integer arguments.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0
        // SAFETY: as above.
        || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Waits until the signal pipe or the mount table (`/proc/self/mountinfo`, which the
/// kernel marks with `POLLPRI` when a mount or unmount happens in this mount namespace)
/// has news, or `timeout_ms` passes. Returns (signals, mounts).
pub(crate) fn wait(signal_fd: i32, mountinfo: Option<&File>, timeout_ms: i32) -> (bool, bool) {
    let mut fds = [
        libc::pollfd {
            fd: signal_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: mountinfo.map_or(-1, AsRawFd::as_raw_fd),
            events: libc::POLLPRI,
            revents: 0,
        },
    ];
    // SAFETY: poll on a local array of two pollfd structs; a negative fd is ignored.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if rc <= 0 {
        return (false, false);
    }
    (
        fds[0].revents & libc::POLLIN != 0,
        fds[1].revents & (libc::POLLPRI | libc::POLLERR) != 0,
    )
}
