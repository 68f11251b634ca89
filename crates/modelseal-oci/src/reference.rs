//! `oci://REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`: the one way a model in a registry is
//! named (`spec/oci.md` §2).

use std::fmt;

/// The prefix that tells a registry reference from a path.
pub const SCHEME: &str = "oci://";

/// Longest repository name the distribution specification allows clients to rely on.
const MAX_REPOSITORY: usize = 255;

/// A SHA-256 digest of an OCI manifest or blob: the only digest modelseal names OCI
/// content by (a registry's other algorithms are refused, not guessed at).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OciDigest([u8; 32]);

impl OciDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// From raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, without the algorithm.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The referrers tag schema's tag for this subject: `sha256-HEX`.
    pub fn fallback_tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

/// An OCI digest as the digest type policies, stores and signatures name artifacts by:
/// the same bytes under `sha256`, so a rule or a signed subject about a manifest matches
/// it exactly, never by comparing text.
impl From<OciDigest> for modelseal_core::ArtifactDigest {
    fn from(digest: OciDigest) -> Self {
        Self::new(modelseal_core::DigestAlgorithm::Sha256, digest.0)
    }
}

impl fmt::Display for OciDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for OciDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for OciDigest {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ReferenceError::Digest(s.to_owned());
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| bad())?;
        Ok(Self(bytes))
    }
}

/// Why a string is not a registry reference modelseal accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// No `oci://` prefix.
    #[error("{0:?} is not an OCI reference (oci://REGISTRY/REPOSITORY[:TAG|@sha256:HEX])")]
    NotOci(String),
    /// The registry part is not a host name or address with an optional port.
    #[error(
        "registry {0:?} is not a host[:port] (a registry name needs a dot, a port or to be localhost)"
    )]
    Registry(String),
    /// The repository is missing or breaks the distribution specification's grammar.
    #[error(
        "repository {0:?} is not valid: lowercase components of [a-z0-9] joined by . _ __ or -, separated by /, at most 255 characters"
    )]
    Repository(String),
    /// The tag breaks the grammar (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
    #[error("tag {0:?} is not valid (at most 128 of [A-Za-z0-9._-], not starting with . or -)")]
    Tag(String),
    /// The digest is not `sha256:` and 64 lowercase hex digits.
    #[error(
        "digest {0:?} is not sha256: and 64 lowercase hex digits (the only algorithm accepted)"
    )]
    Digest(String),
}

/// A parsed `oci://` reference. Without a tag or digest it means the tag `latest`, as
/// every registry client reads it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<OciDigest>,
}

impl Reference {
    /// Whether `s` is meant as a registry reference (starts with `oci://`).
    pub fn is_oci(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    /// Parses `oci://REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| ReferenceError::NotOci(s.to_owned()))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<OciDigest>()?)),
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| ReferenceError::Repository(String::new()))?;
        check_registry(registry)?;
        // A tag follows the last `:` that comes after the last `/`.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (path, None),
        };
        check_repository(repository)?;
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        }
        .normalized())
    }

    /// The registry host (and port), as written.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, as the registry's API names it (Docker Hub's official images
    /// live under `library/`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn normalized(mut self) -> Self {
        if self.registry == "docker.io" && !self.repository.contains('/') {
            self.repository = format!("library/{}", self.repository);
        }
        self
    }

    /// The tag, if one was named.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was named (or the reference was resolved).
    pub fn digest(&self) -> Option<OciDigest> {
        self.digest
    }

    /// What to ask the registry for: the digest if known, else the tag (`latest` if none).
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// This reference pinned to `digest`, keeping the tag for display only.
    pub fn pinned(&self, digest: OciDigest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository, another tag (used for the referrers fallback tag).
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// `REGISTRY/REPOSITORY`: the name a signature gives the model by default.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host the API is served from (Docker Hub's `docker.io` is served elsewhere).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn check_registry(registry: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::Registry(registry.to_owned());
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535) {
            return Err(bad());
        }
    }
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    // Docker's rule: the first component is a registry only if it looks like one;
    // otherwise `oci://library/x` would silently mean a host named `library`.
    let looks_like_registry = host.contains('.') || port.is_some() || host == "localhost";
    if labels_ok && looks_like_registry {
        Ok(())
    } else {
        Err(bad())
    }
}

fn check_repository(repository: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::Repository(repository.to_owned());
    if repository.is_empty() || repository.len() > MAX_REPOSITORY {
        return Err(bad());
    }
    for component in repository.split('/') {
        // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(bad());
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let separator = &component[start..i];
            let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::Tag(tag.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_forms() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse("oci://127.0.0.1:5000/org/model:v1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "org/model", Some("v1"))
        );
        assert_eq!(r.manifest_ref(), "v1");
        let r = Reference::parse(&format!("oci://ghcr.io/a/b-c/d__e@{digest}")).unwrap();
        assert_eq!(r.manifest_ref(), digest);
        assert_eq!(r.to_string(), format!("oci://ghcr.io/a/b-c/d__e@{digest}"));
        let r = Reference::parse(&format!("oci://localhost/m:t@{digest}")).unwrap();
        assert_eq!(r.manifest_ref(), digest, "a digest wins over a tag");
        assert_eq!(
            Reference::parse("oci://localhost:1/m")
                .unwrap()
                .manifest_ref(),
            "latest"
        );
        assert_eq!(
            Reference::parse("oci://docker.io/library/x")
                .unwrap()
                .api_host(),
            "registry-1.docker.io"
        );
        assert_eq!(
            Reference::parse("oci://docker.io/x").unwrap().repository(),
            "library/x",
            "the kubelet reads docker.io/x as library/x, and so must the check"
        );
    }

    #[test]
    fn refuses_what_could_be_misread() {
        let short = "oci://r.io/m@sha256:abc".to_owned();
        let upper = format!("oci://r.io/m@sha256:{}", "AB".repeat(32));
        let other = format!("oci://r.io/m@sha512:{}", "ab".repeat(64));
        for bad in [
            "r.io/m",
            "oci://",
            "oci://r.io",
            "oci://r.io/",
            "oci://library/model",
            "oci://r.io:0/m",
            "oci://r.io:99999/m",
            "oci://r.io:/m",
            "oci://-r.io/m",
            "oci://r.io/Model",
            "oci://r.io/m/",
            "oci://r.io//m",
            "oci://r.io/m..x",
            "oci://r.io/m:",
            "oci://r.io/m:-x",
            "oci://r.io/m:a b",
            "oci://r.io/../m",
            "oci://user@r.io/m",
            &short,
            &upper,
            &other,
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} accepted");
        }
        let long_tag = format!("oci://r.io/m:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        let long_repo = format!("oci://r.io/{}", "a".repeat(256));
        assert!(Reference::parse(&long_repo).is_err());
    }

    proptest::proptest! {
        /// Whatever parses prints back to itself, so a reference shown to a user is the
        /// reference used.
        #[test]
        fn parse_then_display_round_trips(s in "oci://[a-z0-9.:-]{1,12}/[a-z0-9._/-]{1,20}(:[A-Za-z0-9._-]{1,8})?") {
            if let Some(r) = Reference::parse(&s).ok().filter(|r| r.registry() != "docker.io") {
                proptest::prop_assert_eq!(r.to_string(), s);
            }
        }
    }
}
