//! Writing output files atomically: a reader sees the old file or the whole new one,
//! never a partial write, and a failure leaves nothing behind.

use std::io::{self, Write};
use std::path::Path;

/// Who may read the file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Visibility {
    /// Mode 0644: signatures, public keys.
    Public,
    /// Mode 0600: private keys. The mode is set before any byte is written.
    Private,
}

/// Whether an existing file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overwrite {
    /// Replace it (signatures are re-made in CI).
    Allow,
    /// Fail with `AlreadyExists` (keys are never silently replaced).
    Refuse,
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed to
/// disk, then renamed into place.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    visibility: Visibility,
    overwrite: Overwrite,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".modelseal-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    #[cfg(unix)]
    if visibility == Visibility::Public {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = visibility;
    tmp.as_file().sync_all()?;
    match overwrite {
        Overwrite::Allow => tmp.persist(path).map(drop).map_err(|e| e.error),
        Overwrite::Refuse => tmp.persist_noclobber(path).map(drop).map_err(|e| e.error),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn modes_and_overwrite_rules() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("k");
        write_atomic(&secret, b"s", Visibility::Private, Overwrite::Refuse).unwrap();
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_atomic(&secret, b"t", Visibility::Private, Overwrite::Refuse).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&secret).unwrap(), b"s");

        let public = dir.path().join("p");
        write_atomic(&public, b"1", Visibility::Public, Overwrite::Allow).unwrap();
        write_atomic(&public, b"2", Visibility::Public, Overwrite::Allow).unwrap();
        assert_eq!(std::fs::read(&public).unwrap(), b"2");
        let mode = std::fs::metadata(&public).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // Only the two outputs remain: no temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("sig");
        assert!(write_atomic(&path, b"x", Visibility::Public, Overwrite::Allow).is_err());
        assert!(!path.exists());
    }
}
