//! Walking a model directory: which files a manifest covers (`spec/manifest.md` §2).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::open::FileId;
use crate::path::{ManifestPath, PathError};

/// Version-control folders, skipped at the model's top level only: a `.git` deeper down
/// is not the model's own repository, and could hold anything (`sub/.git/config`), so
/// it is signed like any other file.
pub const DEFAULT_IGNORED_NAMES: &[&str] = &[".git", ".hg", ".svn", ".bzr", ".jj"];

/// Names the OpenSSF model-signing tool skips, at the model's top level only.
pub const OMS_IGNORED_NAMES: &[&str] = &[".git", ".github", ".gitattributes", ".gitignore"];

/// Which entries a walk skips before any user ignore path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DefaultIgnores {
    /// [`DEFAULT_IGNORED_NAMES`] at the top level only (the native format).
    #[default]
    VcsAtRoot,
    /// [`OMS_IGNORED_NAMES`] at the top level only, as OMS does, so that a nested
    /// `sub/.git` is signed exactly when model-signing would sign it.
    OmsGitAtRoot,
}

/// What to do with symbolic links inside a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SymlinkPolicy {
    /// Refuse the model (the default).
    #[default]
    Refuse,
    /// Hash the target's content under the link's own path, provided the link resolves
    /// to a regular file inside the model. Links out of the model are refused anyway.
    FollowInside,
}

/// Which files of a model are walked.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Model-relative paths to leave out; a directory leaves out everything below it.
    pub ignore: Vec<ManifestPath>,
    /// Filesystem paths to leave out, such as the signature file when it lies inside the
    /// model. Only the entry at exactly that place is left out (its directory is
    /// canonicalised, its own name is not resolved): a regular file, or a link, which is
    /// then not followed (a Hugging Face snapshot's `model.sig` links into `blobs/`).
    /// A link elsewhere that leads to it is judged like any other link, and the target
    /// of a link in its place is walked on its own. Paths outside the model are harmless.
    pub exclude_files: Vec<PathBuf>,
    /// Symbolic link handling.
    pub symlinks: SymlinkPolicy,
    /// A directory at or above the model inside which links may resolve, and are then
    /// followed whatever `symlinks` says: a Hugging Face cache's repo folder, whose
    /// snapshot files link into its `blobs/`. A link resolving anywhere else is refused.
    pub links_within: Option<PathBuf>,
    /// Entries skipped by default.
    pub defaults: DefaultIgnores,
}

/// A regular file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// Its manifest path.
    pub path: ManifestPath,
    /// Where to read it (the link target when a permitted symlink was followed).
    pub fs_path: PathBuf,
    /// Its size when walked.
    pub size: u64,
    /// The file the walk found: reading checks the path still leads to it.
    pub identity: FileId,
}

/// Why a model could not be walked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// The model path could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A name that is not UTF-8 cannot be put in a manifest.
    #[error("file name is not valid UTF-8: {}", path.display())]
    NonUtf8Name {
        /// The offending path, lossily shown.
        path: PathBuf,
    },
    /// A name that makes an invalid manifest path (a backslash, say).
    #[error("file name cannot be signed")]
    BadName(#[from] PathError),
    /// A symlink under the default policy.
    #[error("{path} is a symbolic link to {}; symlinks are refused by default", target.display())]
    SymlinkRefused {
        /// Where the link is.
        path: ManifestPath,
        /// What it points to.
        target: PathBuf,
    },
    /// A symlink that leaves the model, refused under every policy.
    #[error("{path} is a symbolic link that leads outside the model (to {})", target.display())]
    SymlinkOutside {
        /// Where the link is.
        path: ManifestPath,
        /// What it resolves to.
        target: PathBuf,
    },
    /// A symlink to a directory or other non-file, or a dangling one.
    #[error("{path} is a symbolic link to something that is not a regular file")]
    SymlinkNotFile {
        /// Where the link is.
        path: ManifestPath,
    },
    /// A FIFO, socket or device.
    #[error("{path} is not a regular file")]
    NotRegular {
        /// Where it is.
        path: ManifestPath,
    },
    /// Directories nested deeper than [`MAX_DIR_DEPTH`].
    #[error("{path} is nested more than {MAX_DIR_DEPTH} directories deep; no model is")]
    TooDeep {
        /// The directory past the limit, model-relative.
        path: String,
    },
    /// Nothing left to sign after ignores.
    #[error("model {} holds no files to sign", path.display())]
    Empty {
        /// The model path.
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalkError + '_ {
    move |source| WalkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The model's name as a subject: the last component of its path.
pub fn model_name(root: &Path) -> String {
    let absolute = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_owned())
}

/// How deep directories may nest inside a model. Real models nest a few levels; a chain
/// thousands deep only costs every reader (and a watch, per change) time in path lookups.
pub const MAX_DIR_DEPTH: usize = 64;

/// Lists every file of the model at `root` (a directory, or a single file whose manifest
/// path is its own name), in no particular order.
pub fn walk_model(root: &Path, options: &WalkOptions) -> Result<Vec<ModelFile>, WalkError> {
    let meta = fs::metadata(root).map_err(io_err(root))?;
    let walker = Walker::new(root, options)?;
    let mut files = Vec::new();
    if meta.is_file() {
        let name = root
            .file_name()
            .ok_or_else(|| WalkError::NonUtf8Name { path: root.into() })?;
        let name = name
            .to_str()
            .ok_or_else(|| WalkError::NonUtf8Name { path: root.into() })?;
        files.push(ModelFile {
            path: ManifestPath::parse(name)?,
            fs_path: root.to_path_buf(),
            size: meta.len(),
            identity: FileId::of(&meta),
        });
    } else {
        walker.walk_dir(root, "", &mut files)?;
    }
    if files.is_empty() {
        return Err(WalkError::Empty { path: root.into() });
    }
    Ok(files)
}

/// Finds exactly the files named by `paths` under the directory `root`, without
/// listing anything else: `None` for a path that does not exist. No component of a
/// path may be a symbolic link (a link in the final component follows the walk's
/// symlink policy), so a name can never lead outside the model.
pub fn lookup_files(
    root: &Path,
    paths: &[ManifestPath],
    options: &WalkOptions,
) -> Result<Vec<Option<ModelFile>>, WalkError> {
    let walker = Walker::new(root, options)?;
    paths.iter().map(|path| walker.lookup(root, path)).collect()
}

/// Where a directory entry is: its directory canonicalised, joined with its own name
/// unresolved. Two paths have the same place only if they name the same directory entry,
/// so a link to a file never has the place of the file it leads to.
pub fn place(path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name()?;
    Some(fs::canonicalize(parent).ok()?.join(name))
}

struct Walker<'a> {
    /// Where links may resolve: `links_within` canonicalised, else the model itself.
    link_root: PathBuf,
    options: &'a WalkOptions,
    /// `options.exclude_files` as [`place`] gives them (those whose directory exists).
    excluded: Vec<PathBuf>,
}

impl<'a> Walker<'a> {
    fn new(root: &Path, options: &'a WalkOptions) -> Result<Self, WalkError> {
        let canonical_root = fs::canonicalize(root).map_err(io_err(root))?;
        let link_root = match &options.links_within {
            Some(dir) => fs::canonicalize(dir).map_err(io_err(dir))?,
            None => canonical_root,
        };
        Ok(Self {
            link_root,
            options,
            excluded: options
                .exclude_files
                .iter()
                .filter_map(|p| place(p))
                .collect(),
        })
    }

    fn walk_dir(
        &self,
        dir: &Path,
        prefix: &str,
        out: &mut Vec<ModelFile>,
    ) -> Result<(), WalkError> {
        for item in fs::read_dir(dir).map_err(io_err(dir))? {
            let item = item.map_err(io_err(dir))?;
            let fs_path = item.path();
            let name = item.file_name();
            let name = name.to_str().ok_or_else(|| WalkError::NonUtf8Name {
                path: fs_path.clone(),
            })?;
            let skipped = match self.options.defaults {
                DefaultIgnores::VcsAtRoot => {
                    prefix.is_empty() && DEFAULT_IGNORED_NAMES.contains(&name)
                }
                DefaultIgnores::OmsGitAtRoot => {
                    prefix.is_empty() && OMS_IGNORED_NAMES.contains(&name)
                }
            };
            if skipped {
                continue;
            }
            let path = ManifestPath::parse(&format!("{prefix}{name}"))?;
            if self.is_ignored(&path) {
                continue;
            }
            let file_type = item.file_type().map_err(io_err(&fs_path))?;
            if file_type.is_dir() {
                if prefix.matches('/').count() >= MAX_DIR_DEPTH {
                    return Err(WalkError::TooDeep {
                        path: path.to_string(),
                    });
                }
                self.walk_dir(&fs_path, &format!("{path}/"), out)?;
            } else if file_type.is_file() {
                if self.is_excluded(&fs_path) {
                    continue;
                }
                let meta = item.metadata().map_err(io_err(&fs_path))?;
                out.push(ModelFile {
                    path,
                    fs_path,
                    size: meta.len(),
                    identity: FileId::of(&meta),
                });
            } else if file_type.is_symlink() {
                if self.is_excluded(&fs_path) {
                    continue;
                }
                if let Some(file) = self.follow_link(path, &fs_path)? {
                    out.push(file);
                }
            } else {
                return Err(WalkError::NotRegular { path });
            }
        }
        Ok(())
    }

    fn lookup(&self, root: &Path, path: &ManifestPath) -> Result<Option<ModelFile>, WalkError> {
        let mut fs_path = root.to_path_buf();
        let components: Vec<&str> = path.as_str().split('/').collect();
        for (i, component) in components.iter().enumerate() {
            fs_path.push(component);
            let meta = match fs::symlink_metadata(&fs_path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(&fs_path)(e)),
            };
            let last = i + 1 == components.len();
            let so_far = ManifestPath::parse(&components[..=i].join("/"))?;
            if meta.file_type().is_symlink() {
                if !last {
                    let target = fs::read_link(&fs_path).map_err(io_err(&fs_path))?;
                    return Err(WalkError::SymlinkRefused {
                        path: so_far,
                        target,
                    });
                }
                if self.is_excluded(&fs_path) {
                    return Ok(None);
                }
                return self.follow_link(so_far, &fs_path);
            }
            if last {
                if !meta.is_file() {
                    return Err(WalkError::NotRegular { path: so_far });
                }
                if self.is_excluded(&fs_path) {
                    return Ok(None);
                }
                return Ok(Some(ModelFile {
                    path: so_far,
                    fs_path,
                    size: meta.len(),
                    identity: FileId::of(&meta),
                }));
            }
            if !meta.is_dir() {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn is_ignored(&self, path: &ManifestPath) -> bool {
        self.options
            .ignore
            .iter()
            .any(|ignored| ignored == path || ignored.is_dir_prefix_of(path))
    }

    /// Whether the entry at `fs_path` (a regular file or a link, not resolved) is one of
    /// the excluded files: a link is skipped only for its own place, never for where it
    /// leads.
    fn is_excluded(&self, fs_path: &Path) -> bool {
        !self.excluded.is_empty() && place(fs_path).is_some_and(|c| self.excluded.contains(&c))
    }

    fn follow_link(&self, path: ManifestPath, link: &Path) -> Result<Option<ModelFile>, WalkError> {
        let target = fs::read_link(link).map_err(io_err(link))?;
        let resolved = match fs::canonicalize(link) {
            Ok(resolved) => resolved,
            Err(_) => return Err(WalkError::SymlinkNotFile { path }),
        };
        if !resolved.starts_with(&self.link_root) {
            return Err(WalkError::SymlinkOutside {
                path,
                target: resolved,
            });
        }
        if self.options.symlinks == SymlinkPolicy::Refuse && self.options.links_within.is_none() {
            return Err(WalkError::SymlinkRefused { path, target });
        }
        let meta = fs::metadata(&resolved).map_err(io_err(&resolved))?;
        if !meta.is_file() {
            return Err(WalkError::SymlinkNotFile { path });
        }
        Ok(Some(ModelFile {
            path,
            fs_path: resolved,
            size: meta.len(),
            identity: FileId::of(&meta),
        }))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn p(s: &str) -> ManifestPath {
        ManifestPath::parse(s).unwrap()
    }

    #[test]
    fn directories_may_nest_64_deep_and_no_deeper() {
        // Tenth attack review: a chain thousands deep cost a watch minutes of CPU per
        // change (path lookups at every level) before the name length refused it.
        for (depth, ok) in [(MAX_DIR_DEPTH, true), (MAX_DIR_DEPTH + 1, false)] {
            let root = tempfile::tempdir().unwrap();
            let mut dir = root.path().to_path_buf();
            for _ in 0..depth {
                dir.push("d");
            }
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("w.bin"), b"x").unwrap();
            let walked = walk_model(root.path(), &WalkOptions::default());
            match walked {
                Ok(files) => assert!(ok && files.len() == 1, "depth {depth}"),
                Err(WalkError::TooDeep { .. }) => assert!(!ok, "depth {depth}"),
                Err(e) => panic!("depth {depth}: {e}"),
            }
        }
    }

    #[test]
    fn default_ignores_differ_by_format() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path();
        for f in [
            ".git/HEAD",
            "sub/.git/HEAD",
            ".gitignore",
            "sub/.gitignore",
            ".hg/x",
            "w.bin",
        ] {
            std::fs::create_dir_all(m.join(f).parent().unwrap()).unwrap();
            std::fs::write(m.join(f), b"x").unwrap();
        }
        let names = |defaults| {
            let mut found: Vec<String> = walk_model(
                m,
                &WalkOptions {
                    defaults,
                    ..WalkOptions::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|f| f.path.to_string())
            .collect();
            found.sort();
            found
        };
        // Only the top level's VCS folders are skipped (on main a planted
        // `sub/.git/HEAD` rode along unsigned with a verified model).
        assert_eq!(
            names(DefaultIgnores::VcsAtRoot),
            [".gitignore", "sub/.git/HEAD", "sub/.gitignore", "w.bin"]
        );
        assert_eq!(
            names(DefaultIgnores::OmsGitAtRoot),
            [".hg/x", "sub/.git/HEAD", "sub/.gitignore", "w.bin"]
        );
    }

    #[test]
    fn only_the_entry_at_the_signatures_place_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir_all(m.join("blobs")).unwrap();
        std::fs::write(m.join("blobs/sig"), b"bundle").unwrap();
        std::fs::write(m.join("w.bin"), b"w").unwrap();
        // The signature's place holds a link (a hub snapshot's model.sig): left out,
        // not followed, while what it leads to is walked on its own.
        std::os::unix::fs::symlink("blobs/sig", m.join("model.sig")).unwrap();
        let options = WalkOptions {
            exclude_files: vec![m.join("model.sig")],
            symlinks: SymlinkPolicy::FollowInside,
            ..WalkOptions::default()
        };
        let mut found: Vec<String> = walk_model(&m, &options)
            .unwrap()
            .into_iter()
            .map(|f| f.path.to_string())
            .collect();
        found.sort();
        assert_eq!(found, ["blobs/sig", "w.bin"]);
        // A link elsewhere leading to the signature is judged like any link.
        std::os::unix::fs::symlink("model.sig", m.join("chat_template.jinja")).unwrap();
        let strict = WalkOptions {
            exclude_files: vec![m.join("model.sig")],
            ..WalkOptions::default()
        };
        let err = walk_model(&m, &strict).unwrap_err();
        assert!(matches!(err, WalkError::SymlinkRefused { .. }), "{err}");
    }

    #[test]
    fn lookup_finds_only_what_is_named_and_never_follows_links_out() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir_all(m.join("d")).unwrap();
        std::fs::write(m.join("d/f"), b"abc").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path(), m.join("up")).unwrap();
        let found = lookup_files(
            &m,
            &[p("d/f"), p("d/absent"), p("nope/x")],
            &WalkOptions::default(),
        )
        .unwrap();
        assert_eq!(found[0].as_ref().unwrap().size, 3);
        assert!(found[1].is_none() && found[2].is_none());
        let err = lookup_files(&m, &[p("up/secret")], &WalkOptions::default()).unwrap_err();
        assert!(matches!(err, WalkError::SymlinkRefused { .. }), "{err}");
        let err = lookup_files(&m, &[p("d")], &WalkOptions::default()).unwrap_err();
        assert!(matches!(err, WalkError::NotRegular { .. }), "{err}");
    }
}
