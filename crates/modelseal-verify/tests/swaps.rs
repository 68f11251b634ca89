//! Files swapped between the walk and the read: for a link, a FIFO, another file, or
//! truncated while hashed. The swap is made from the progress callback, which runs after
//! the walk and before (or while) the bytes are read, so each race is hit every time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use modelseal_core::hash::{HashError, NoProgress, Progress};
use modelseal_core::open::NotTheFile;
use modelseal_core::{SignOptions, SigningKey, sign_model};
use modelseal_verify::loader::{ModelReader, ReadError};
use modelseal_verify::{TrustPolicy, VerifyError, VerifyOptions, verify_model};

const BIG: usize = 9 << 20;
/// Larger than the 32 MiB window the memory-mapped hashing used, so a truncation after
/// the first window reached unmapped pages.
const HUGE: usize = 40 << 20;

/// Runs `on_begin` once, when hashing begins; `on_advance` once, at the first progress.
struct Swapper {
    on_begin: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    on_advance: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Progress for Swapper {
    fn begin(&self, _: u64) {
        if let Some(f) = self.on_begin.lock().unwrap().take() {
            f();
        }
    }
    fn advance(&self, _: u64) {
        if let Some(f) = self.on_advance.lock().unwrap().take() {
            f();
        }
    }
}

fn swapper(
    on_begin: impl FnOnce() + Send + 'static,
    on_advance: impl FnOnce() + Send + 'static,
) -> Swapper {
    Swapper {
        on_begin: Mutex::new(Some(Box::new(on_begin))),
        on_advance: Mutex::new(Some(Box::new(on_advance))),
    }
}

struct Model {
    dir: tempfile::TempDir,
    bundle: modelseal_core::Bundle,
    trust: TrustPolicy,
}

impl Model {
    fn new() -> Self {
        Self::with_weights(BIG)
    }
    fn with_weights(size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("config.json"), b"{\"layers\":2}").unwrap();
        let big: Vec<u8> = (0..size).map(|i| (i % 249) as u8).collect();
        std::fs::write(m.join("weights.bin"), big).unwrap();
        let key = SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519).unwrap();
        let signed = sign_model(&m, &SignOptions::default(), &key, &NoProgress).unwrap();
        Self {
            dir,
            bundle: signed.bundle,
            trust: TrustPolicy::from_keys(vec![key.verifying_key()]),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("m")
    }
    fn verify(&self, progress: &dyn Progress) -> Result<(), VerifyError> {
        verify_model(
            &self.root(),
            &self.bundle,
            &self.trust,
            &VerifyOptions::default(),
            progress,
        )
        .map(|_| ())
    }
}

/// Replaces `file` by what `make` puts at a temporary name, atomically.
fn swap(file: &Path, make: impl FnOnce(&Path)) {
    let tmp = file.with_extension("swap");
    make(&tmp);
    std::fs::rename(&tmp, file).unwrap();
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[track_caller]
fn assert_swapped(result: Result<(), VerifyError>, expected: NotTheFile) {
    match result {
        Err(VerifyError::Hash(HashError::Swapped { reason, .. })) => assert_eq!(reason, expected),
        other => panic!("expected a swap ({expected}), got {other:?}"),
    }
}

#[test]
fn a_file_swapped_after_the_walk_is_refused_not_followed_or_waited_on() {
    for target in ["config.json", "weights.bin"] {
        // For a link to a copy with the very same bytes, inside the model.
        let m = Model::new();
        let file = m.root().join(target);
        let copy = m.root().join("copy.bin");
        std::fs::copy(&file, &copy).unwrap();
        let f = file.clone();
        let progress = swapper(
            move || {
                swap(&f, |tmp| {
                    std::os::unix::fs::symlink("copy.bin", tmp).unwrap()
                })
            },
            || {},
        );
        // (The copy is an unsigned extra file too; the swap is found first, while hashing.)
        let result = m.verify(&progress);
        assert_swapped(result, NotTheFile::Link);

        // For a FIFO: refused at once, no writer ever comes.
        let m = Model::new();
        let f = m.root().join(target);
        let progress = swapper(move || swap(&f, mkfifo), || {});
        let started = Instant::now();
        assert_swapped(m.verify(&progress), NotTheFile::NotRegular);
        assert!(started.elapsed() < Duration::from_secs(10));

        // For another file with the same bytes.
        let m = Model::new();
        let f = m.root().join(target);
        let progress = swapper(
            move || {
                let bytes = std::fs::read(&f).unwrap();
                swap(&f, |tmp| std::fs::write(tmp, bytes).unwrap());
            },
            || {},
        );
        assert_swapped(m.verify(&progress), NotTheFile::Replaced);
    }
}

#[test]
fn a_file_truncated_while_hashed_is_a_change_not_a_crash() {
    // With memory-mapped hashing this ended the test process with SIGBUS.
    let m = Model::with_weights(HUGE);
    let file = m.root().join("weights.bin");
    let progress = swapper(
        || {},
        move || {
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.set_len(4096).unwrap();
        },
    );
    match m.verify(&progress) {
        Err(VerifyError::Hash(HashError::Changed { expected, .. })) => {
            assert_eq!(expected, HUGE as u64)
        }
        other => panic!("expected a size change, got {other:?}"),
    }
}

#[test]
fn a_verified_reader_refuses_a_file_swapped_after_it_opened() {
    let m = Model::new();
    let reader = ModelReader::open(
        &m.root(),
        &m.bundle,
        &m.trust,
        &VerifyOptions::default(),
        None,
    )
    .unwrap();
    assert!(reader.read_range("config.json", 0..4).is_ok());
    swap(&m.root().join("config.json"), mkfifo);
    let started = Instant::now();
    match reader.read_range("config.json", 0..4) {
        Err(ReadError::Swapped { reason, .. }) => assert_eq!(reason, NotTheFile::NotRegular),
        other => panic!("expected a swap, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let bytes = std::fs::read(m.root().join("weights.bin")).unwrap();
    swap(&m.root().join("weights.bin"), |tmp| {
        std::fs::write(tmp, &bytes).unwrap()
    });
    assert!(matches!(
        reader.read_range("weights.bin", 0..4),
        Err(ReadError::Swapped {
            reason: NotTheFile::Replaced,
            ..
        })
    ));
}
