//! `ManifestPath`: a file's name inside a model, in the one form a manifest may hold.

use std::fmt;

/// A relative POSIX path of a regular file inside a model directory.
///
/// Parsing enforces the rules of `spec/manifest.md` §2, so a value of this type can never
/// name anything outside the model: it is non-empty valid UTF-8 of at most 4096 bytes,
/// components are separated by a single `/`, and no component is empty, `.` or `..`. It
/// holds no NUL, no backslash and no leading `/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestPath(String);

/// Longest path a manifest may hold, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a string is not a valid [`ManifestPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The empty string.
    #[error("path is empty")]
    Empty,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("path is {len} bytes long, more than the limit of {MAX_PATH_BYTES}")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// Starts with `/`.
    #[error("path {0:?} is absolute")]
    Absolute(String),
    /// Has a `..` component.
    #[error("path {0:?} climbs out with `..`")]
    ParentComponent(String),
    /// Has a `.` component or an empty component (`a//b`, trailing `/`).
    #[error("path {0:?} is not normalized (empty or `.` component)")]
    NotNormalized(String),
    /// Holds a NUL byte or a backslash.
    #[error("path {0:?} holds a forbidden character (NUL or backslash)")]
    ForbiddenCharacter(String),
    /// An ignore path with `*`, `?` or `[`: ignore paths are literal paths (OMS v1.0
    /// forbids patterns), and a pattern taken literally would ignore nothing the user
    /// meant, or something they did not.
    #[error(
        "ignore path {0:?} holds a glob character (*, ? or [); ignore paths are literal paths, not patterns"
    )]
    GlobInIgnorePath(String),
}

impl ManifestPath {
    /// Parses and checks an ignore path: a path, without glob characters.
    pub fn parse_ignore(s: &str) -> Result<Self, PathError> {
        let path = Self::parse(s)?;
        path.check_ignore()?;
        Ok(path)
    }

    /// Refuses this path as an ignore path if it holds a glob character.
    pub fn check_ignore(&self) -> Result<(), PathError> {
        if self.as_str().contains(['*', '?', '[']) {
            return Err(PathError::GlobInIgnorePath(self.as_str().to_owned()));
        }
        Ok(())
    }

    /// Parses and checks a path string.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong { len: s.len() });
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute(s.to_owned()));
        }
        if s.contains(['\0', '\\']) {
            return Err(PathError::ForbiddenCharacter(s.to_owned()));
        }
        for component in s.split('/') {
            match component {
                ".." => return Err(PathError::ParentComponent(s.to_owned())),
                "" | "." => return Err(PathError::NotNormalized(s.to_owned())),
                _ => {}
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's UTF-8 bytes, as bound into a Merkle leaf.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// True when `self` is a strict directory prefix of `other` (`a` of `a/b`).
    pub fn is_dir_prefix_of(&self, other: &ManifestPath) -> bool {
        other
            .0
            .strip_prefix(&self.0)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Joins the path onto a directory using the platform's separator.
    pub fn to_fs_path(&self, root: &std::path::Path) -> std::path::PathBuf {
        let mut out = root.to_path_buf();
        out.extend(self.0.split('/'));
        out
    }
}

impl fmt::Display for ManifestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ManifestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl serde::Serialize for ManifestPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ManifestPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        for ok in [
            "a",
            "a/b.txt",
            ".gitattributes",
            "x..y",
            "...",
            "dir/.hidden",
            "é/ü",
        ] {
            assert_eq!(ManifestPath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_each_bad_form() {
        assert_eq!(ManifestPath::parse(""), Err(PathError::Empty));
        assert_eq!(
            ManifestPath::parse("/etc/passwd"),
            Err(PathError::Absolute("/etc/passwd".into()))
        );
        for bad in ["..", "../x", "a/../b", "a/.."] {
            assert_eq!(
                ManifestPath::parse(bad),
                Err(PathError::ParentComponent(bad.into()))
            );
        }
        for bad in [".", "./a", "a//b", "a/", "a/./b"] {
            assert_eq!(
                ManifestPath::parse(bad),
                Err(PathError::NotNormalized(bad.into()))
            );
        }
        for bad in ["a\\b", "a\0b"] {
            assert_eq!(
                ManifestPath::parse(bad),
                Err(PathError::ForbiddenCharacter(bad.into()))
            );
        }
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        assert_eq!(
            ManifestPath::parse(&long),
            Err(PathError::TooLong { len: 4097 })
        );
    }

    #[test]
    fn dir_prefix() {
        let a = ManifestPath::parse("a").unwrap();
        assert!(a.is_dir_prefix_of(&ManifestPath::parse("a/b").unwrap()));
        assert!(!a.is_dir_prefix_of(&ManifestPath::parse("ab").unwrap()));
        assert!(!a.is_dir_prefix_of(&a));
    }
}
