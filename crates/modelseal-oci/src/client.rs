//! A registry client for the OCI distribution API, narrow on purpose: every body a
//! registry sends is read with a bound, every blob is checked against its digest and
//! size, and every request has a deadline (`spec/oci.md` §6).

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{self, HeaderValue};

use crate::OciError;
use crate::auth::{Challenge, Credential, find_credential, parse_challenge};
use crate::reference::{OciDigest, Reference};
use modelseal_core::json::KeyRule;

/// Media types modelseal asks a registry for when it resolves a reference.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// How to reach registries, and how much to take from them.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Extra trusted CA certificates (PEM), beside the system's.
    pub ca_pem: Vec<Vec<u8>>,
    /// Connecting, and each read or write, must finish within this.
    pub timeout: Duration,
    /// A small document (manifest, index, token, bundle) must arrive whole within this.
    pub document_deadline: Duration,
    /// Largest manifest or index accepted (the distribution spec's suggested 4 MiB).
    pub max_manifest_bytes: u64,
    /// Largest attestation blob (a bundle) accepted.
    pub max_bundle_bytes: u64,
    /// Speak plain HTTP (only ever for loopback test registries).
    pub plain_http: bool,
    /// Credentials to use instead of looking them up.
    pub credential: Option<Credential>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            ca_pem: Vec::new(),
            timeout: Duration::from_secs(30),
            document_deadline: Duration::from_secs(30),
            max_manifest_bytes: 4 << 20,
            max_bundle_bytes: 16 << 20,
            plain_http: false,
            credential: None,
        }
    }
}

/// What a cached Authorization header is good for: API host, repository, push or not.
type TokenScope = (String, String, bool);
/// Most scopes a client keeps tokens for.
const MAX_TOKENS: usize = 64;

/// Every field name the OCI image and distribution specs (and Docker's schema 2) give a
/// manifest, index or descriptor: a key equal to one of these only under case folding is
/// read by Go as that field and ignored by serde.
const OCI_FIELD_NAMES: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "annotations",
    "digest",
    "size",
    "urls",
    "data",
    "platform",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
];
/// Longest bearer token accepted (registries issue JWTs of a few KiB).
const MAX_TOKEN_BYTES: usize = 16 << 10;

/// A blocking client for one or more registries, holding tokens per repository.
pub struct Registry {
    http: Client,
    options: RegistryOptions,
    tokens: Mutex<Vec<(TokenScope, HeaderValue)>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A manifest as fetched: its bytes, their digest and the media type the registry gave.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The bytes, exactly as served (the digest is over these).
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub digest: OciDigest,
    /// `mediaType` from the document, else the `Content-Type` header.
    pub media_type: String,
}

impl Registry {
    /// A client with these options.
    pub fn new(options: RegistryOptions) -> Result<Self, OciError> {
        let mut builder = Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .user_agent(concat!("modelseal/", env!("CARGO_PKG_VERSION")))
            // Blob downloads may be redirected to storage; nothing else is expected to.
            .redirect(reqwest::redirect::Policy::limited(5))
            .https_only(!options.plain_http);
        for pem in &options.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| OciError::Setup(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(OciError::Setup(
                    "CA certificate file holds no PEM certificate".into(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| OciError::Setup(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            options,
            tokens: Mutex::new(Vec::new()),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    fn base(&self, reference: &Reference) -> String {
        let scheme = if self.options.plain_http {
            "http"
        } else {
            "https"
        };
        format!(
            "{scheme}://{}/v2/{}",
            reference.api_host(),
            reference.repository()
        )
    }

    /// Fetches the manifest `reference` names (by digest if it has one, else by tag),
    /// bounded, and checks it against the reference's digest when there is one. A tag is
    /// resolved here, once: the digest returned is of the bytes returned. A manifest whose
    /// keys Go's reader (the runtimes') would read differently from serde is refused.
    pub fn manifest(&self, reference: &Reference) -> Result<FetchedManifest, OciError> {
        let url = format!(
            "{}/manifests/{}",
            self.base(reference),
            reference.manifest_ref()
        );
        let response = self.send(reference, false, |c| {
            c.get(&url).header(header::ACCEPT, ACCEPT_MANIFESTS)
        })?;
        let response = expect_ok(response, &url)?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let served_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = self.read_document(response, self.options.max_manifest_bytes, &url)?;
        let digest = OciDigest::of(&bytes);
        if let Some(expected) = reference.digest() {
            if digest != expected {
                return Err(OciError::DigestMismatch {
                    what: format!("manifest {reference}"),
                    expected: expected.to_string(),
                    found: digest.to_string(),
                });
            }
        }
        // A registry that names another digest than the bytes it sent is not to be
        // believed about either (only sha256 headers can be compared).
        if let Some(served) = served_digest.filter(|s| s.starts_with("sha256:")) {
            if served != digest.to_string() {
                return Err(OciError::DigestMismatch {
                    what: format!("manifest {reference} (Docker-Content-Digest header)"),
                    expected: served,
                    found: digest.to_string(),
                });
            }
        }
        modelseal_core::json::check_keys(
            &bytes,
            KeyRule::GoFolding {
                known: OCI_FIELD_NAMES,
            },
        )
        .map_err(|problem| OciError::Ambiguous {
            what: format!("manifest {reference}"),
            problem,
        })?;
        let media_type = serde_json::from_slice::<MediaTypeOnly>(&bytes)
            .ok()
            .and_then(|m| m.media_type)
            .or(content_type)
            .unwrap_or_default();
        Ok(FetchedManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Fetches the manifest under a tag, or `None` if the tag does not exist.
    pub fn manifest_if_exists(
        &self,
        reference: &Reference,
    ) -> Result<Option<FetchedManifest>, OciError> {
        match self.manifest(reference) {
            Ok(m) => Ok(Some(m)),
            Err(OciError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A whole small blob (a bundle, a config), bounded by `max` and checked.
    pub fn blob(
        &self,
        reference: &Reference,
        digest: OciDigest,
        size: u64,
        max: u64,
    ) -> Result<Vec<u8>, OciError> {
        if size > max {
            return Err(OciError::TooLarge {
                what: format!("blob {digest}"),
                size,
                limit: max,
            });
        }
        let mut reader = self.blob_reader(reference, digest, size)?;
        let mut out = Vec::with_capacity(size as usize);
        let started = Instant::now();
        let mut buf = [0u8; 64 << 10];
        loop {
            let n = reader.read(&mut buf).map_err(|e| reader.error(e))?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if started.elapsed() > self.options.document_deadline {
                return Err(OciError::Timeout(format!("blob {digest}")));
            }
        }
        Ok(out)
    }

    /// A blob as a stream that yields at most `size` bytes and fails at its end unless
    /// exactly `size` bytes with SHA-256 `digest` arrived.
    pub fn blob_reader(
        &self,
        reference: &Reference,
        digest: OciDigest,
        size: u64,
    ) -> Result<BlobReader, OciError> {
        let url = format!("{}/blobs/{digest}", self.base(reference));
        let response = self.send(reference, false, |c| c.get(&url))?;
        let response = expect_ok(response, &url)?;
        if let Some(len) = response.content_length() {
            if len != size {
                return Err(OciError::DigestMismatch {
                    what: format!("blob {digest} length"),
                    expected: size.to_string(),
                    found: len.to_string(),
                });
            }
        }
        Ok(BlobReader {
            inner: response,
            digest,
            size,
            seen: 0,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            done: false,
        })
    }

    /// Whether the repository holds this blob.
    fn has_blob(&self, reference: &Reference, digest: OciDigest) -> Result<bool, OciError> {
        let url = format!("{}/blobs/{digest}", self.base(reference));
        let response = self.send(reference, true, |c| c.head(&url))?;
        Ok(response.status().is_success())
    }

    /// Uploads `data` as a blob (monolithically) unless the repository has it already.
    pub fn push_blob(&self, reference: &Reference, data: &[u8]) -> Result<OciDigest, OciError> {
        let digest = OciDigest::of(data);
        if self.has_blob(reference, digest)? {
            return Ok(digest);
        }
        let start = format!("{}/blobs/uploads/", self.base(reference));
        let response = self.send(reference, true, |c| c.post(&start))?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error(response, &start));
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| OciError::Protocol(format!("{start}: upload without a Location")))?;
        let mut url = reqwest::Url::parse(&same_origin(&start, location, "upload Location")?)
            .map_err(|e| OciError::Protocol(format!("{start}: bad upload Location: {e}")))?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let body = data.to_vec();
        let response = self.send(reference, true, |c| {
            c.put(url.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error(response, url.as_str()));
        }
        Ok(digest)
    }

    /// Uploads a manifest under `reference` (its tag, or its digest). Returns the
    /// `OCI-Subject` header, which a registry with the referrers API sends back for a
    /// manifest that has a subject.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Option<String>, OciError> {
        let url = format!(
            "{}/manifests/{}",
            self.base(reference),
            reference.manifest_ref()
        );
        let body = bytes.to_vec();
        let response = self.send(reference, true, |c| {
            c.put(&url)
                .header(header::CONTENT_TYPE, media_type)
                .body(body.clone())
        })?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error(response, &url));
        }
        Ok(response
            .headers()
            .get("oci-subject")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }

    /// The referrers API's index for `subject`, or `None` when the registry has no
    /// referrers API (it answers 404, as the distribution spec says).
    pub fn referrers_api(
        &self,
        reference: &Reference,
        subject: OciDigest,
    ) -> Result<Option<Vec<u8>>, OciError> {
        let url = format!("{}/referrers/{subject}", self.base(reference));
        let response = self.send(reference, false, |c| {
            c.get(&url)
                .header(header::ACCEPT, "application/vnd.oci.image.index.v1+json")
        })?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = expect_ok(response, &url)?;
        let is_index = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/vnd.oci.image.index.v1+json"));
        if !is_index {
            // Some registries answer unknown routes with 200 and a page: no API.
            return Ok(None);
        }
        Ok(Some(self.read_document(
            response,
            self.options.max_manifest_bytes,
            &url,
        )?))
    }

    /// The repository's tags, following `Link` pages, at most `max` of them.
    pub fn tags(&self, reference: &Reference, max: usize) -> Result<Vec<String>, OciError> {
        let base = self.base(reference);
        let mut url = format!("{base}/tags/list?n=1000");
        let mut out = Vec::new();
        for _page in 0..MAX_TAG_PAGES {
            let response = self.send(reference, false, |c| c.get(&url))?;
            let response = expect_ok(response, &url)?;
            let next = response
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|v| {
                    v.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned()
                });
            let body = self.read_document(response, self.options.max_manifest_bytes, &url)?;
            #[derive(serde::Deserialize)]
            struct Tags {
                tags: Option<Vec<String>>,
            }
            let page: Tags = serde_json::from_slice(&body)
                .map_err(|e| OciError::Protocol(format!("{url}: tag list: {e}")))?;
            out.extend(page.tags.unwrap_or_default());
            if out.len() >= max {
                out.truncate(max);
                return Ok(out);
            }
            match next {
                Some(link) => url = same_origin(&base, &link, "tag list Link")?,
                None => return Ok(out),
            }
        }
        Err(OciError::Protocol(format!(
            "{base}/tags/list: more than {MAX_TAG_PAGES} pages"
        )))
    }

    /// Sends a request built by `build`, answering one authentication challenge.
    fn send(
        &self,
        reference: &Reference,
        push: bool,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, OciError> {
        let key = (
            reference.api_host().to_owned(),
            reference.repository().to_owned(),
            push,
        );
        let cached = self.cached_token(&key);
        let mut request = build(&self.http);
        if let Some(token) = &cached {
            request = request.header(header::AUTHORIZATION, token.clone());
        }
        let response = request.send().map_err(|e| transport_error(e, reference))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let Some(challenge) = challenge else {
            return Err(OciError::Denied(format!(
                "{}: 401 without a challenge modelseal understands",
                reference.registry()
            )));
        };
        let credential = self
            .options
            .credential
            .clone()
            .or_else(|| find_credential(reference.registry()));
        let authorization = match challenge {
            Challenge::Basic => match &credential {
                Some(Credential::UsernamePassword(user, password)) => basic(user, password),
                _ => {
                    return Err(OciError::Denied(format!(
                        "{} asks for a username and password and none was found (Docker config, REGISTRY_AUTH_FILE, or MODELSEAL_REGISTRY_USERNAME/PASSWORD with MODELSEAL_REGISTRY_HOST)",
                        reference.registry()
                    )));
                }
            },
            Challenge::Bearer { realm, service, .. } => {
                self.token(reference, push, &realm, service.as_deref(), credential)?
            }
        };
        {
            // One entry per scope, replaced when renewed; a client that has talked to
            // very many repositories starts over rather than grow.
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens.retain(|(k, _)| *k != key);
            if tokens.len() >= MAX_TOKENS {
                tokens.clear();
            }
            tokens.push((key, authorization.clone()));
        }
        let response = build(&self.http)
            .header(header::AUTHORIZATION, authorization)
            .send()
            .map_err(|e| transport_error(e, reference))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(OciError::Denied(format!(
                "{}: credentials refused for {}",
                reference.registry(),
                reference.repository()
            )));
        }
        Ok(response)
    }

    fn cached_token(&self, key: &TokenScope) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Asks the token service for a bearer token for this repository.
    fn token(
        &self,
        reference: &Reference,
        push: bool,
        realm: &str,
        service: Option<&str>,
        credential: Option<Credential>,
    ) -> Result<HeaderValue, OciError> {
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| OciError::Protocol(format!("token realm {realm:?}: {e}")))?;
        // Credentials go to a token service over TLS only (unless this run is plain HTTP).
        if url.scheme() != "https" && !self.options.plain_http {
            return Err(OciError::Protocol(format!(
                "token realm {realm} is not https: credentials are not sent there"
            )));
        }
        let actions = if push { "pull,push" } else { "pull" };
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair(
                "scope",
                &format!("repository:{}:{actions}", reference.repository()),
            );
        }
        let mut request = self.http.get(url.clone());
        match &credential {
            Some(Credential::UsernamePassword(user, password)) => {
                request = request.basic_auth(user, Some(password));
            }
            Some(Credential::IdentityToken(token)) => {
                // The refresh-token grant (distribution's OAuth2 token flow).
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", token.clone()),
                    ("client_id", "modelseal".to_owned()),
                    (
                        "scope",
                        format!("repository:{}:{actions}", reference.repository()),
                    ),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_owned()));
                }
                request = self.http.post(url.clone()).form(&form);
            }
            None => {}
        }
        let response = request.send().map_err(|e| transport_error(e, reference))?;
        if !response.status().is_success() {
            return Err(OciError::Denied(format!(
                "token service {} answered {}",
                url.host_str().unwrap_or(realm),
                response.status()
            )));
        }
        let body = self.read_document(response, 1 << 20, realm)?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| OciError::Protocol(format!("token service answer: {e}")))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OciError::Protocol("token service answered no token".into()))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(OciError::Protocol(format!(
                "token service answered a token of {} bytes (at most {MAX_TOKEN_BYTES})",
                token.len()
            )));
        }
        HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| OciError::Protocol("token service answered an unusable token".into()))
    }

    /// Reads a whole small response body: at most `max` bytes, within the deadline.
    fn read_document(
        &self,
        mut response: Response,
        max: u64,
        url: &str,
    ) -> Result<Vec<u8>, OciError> {
        if let Some(len) = response.content_length() {
            if len > max {
                return Err(OciError::TooLarge {
                    what: url.to_owned(),
                    size: len,
                    limit: max,
                });
            }
        }
        let started = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 16 << 10];
        loop {
            let n = response
                .read(&mut buf)
                .map_err(|e| crate::from_io(e, url))?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() as u64 + n as u64 > max {
                return Err(OciError::TooLarge {
                    what: url.to_owned(),
                    size: out.len() as u64 + n as u64,
                    limit: max,
                });
            }
            out.extend_from_slice(&buf[..n]);
            if started.elapsed() > self.options.document_deadline {
                return Err(OciError::Timeout(url.to_owned()));
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct MediaTypeOnly {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
}

/// Most pages of a tag list followed.
const MAX_TAG_PAGES: usize = 100;

/// `link` resolved against `base`, refused unless it stays on the same scheme, host and
/// port: requests to it carry this registry's Authorization header.
fn same_origin(base: &str, link: &str, what: &str) -> Result<String, OciError> {
    let base = reqwest::Url::parse(base).map_err(|e| OciError::Protocol(format!("{what}: {e}")))?;
    let joined = base
        .join(link)
        .map_err(|e| OciError::Protocol(format!("{what} {link:?}: {e}")))?;
    if joined.origin() != base.origin() {
        return Err(OciError::Protocol(format!(
            "{what} {joined} leaves the registry {}",
            base.origin().ascii_serialization()
        )));
    }
    Ok(joined.to_string())
}

fn basic(user: &str, password: &str) -> HeaderValue {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header");
    value.set_sensitive(true);
    value
}

fn expect_ok(response: Response, url: &str) -> Result<Response, OciError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(status_error(response, url))
    }
}

fn status_error(response: Response, url: &str) -> OciError {
    match response.status() {
        StatusCode::NOT_FOUND => OciError::NotFound(url.to_owned()),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
            OciError::Denied(format!("{url}: {}", response.status()))
        }
        status => OciError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        },
    }
}

fn transport_error(e: reqwest::Error, reference: &Reference) -> OciError {
    if crate::is_timeout(&e) {
        OciError::Timeout(format!("registry {}", reference.registry()))
    } else if e.is_connect() {
        OciError::Unreachable(format!("{}: {}", reference.registry(), crate::chain(&e)))
    } else {
        OciError::Transport(format!("{}: {}", reference.registry(), crate::chain(&e)))
    }
}

/// A blob download that checks the blob's size and SHA-256 as it goes; the error at its
/// end (or at the first byte too many) is the only way it ends on bad content.
pub struct BlobReader {
    inner: Response,
    digest: OciDigest,
    size: u64,
    seen: u64,
    hasher: sha2::Sha256,
    done: bool,
}

impl BlobReader {
    /// Turns an I/O error from this reader back into the registry error it carries.
    pub fn error(&self, e: std::io::Error) -> OciError {
        crate::from_io(e, &format!("blob {}", self.digest))
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        if self.done {
            return Ok(0);
        }
        // Ask for one byte beyond the declared size, so a longer body is noticed.
        let room = (self.size - self.seen).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.seen += n as u64;
        if self.seen > self.size {
            return Err(crate::to_io(OciError::DigestMismatch {
                what: format!("blob {} length", self.digest),
                expected: self.size.to_string(),
                found: format!("more than {}", self.size),
            }));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 {
            self.done = true;
            if self.seen != self.size {
                return Err(crate::to_io(OciError::DigestMismatch {
                    what: format!("blob {} length", self.digest),
                    expected: self.size.to_string(),
                    found: self.seen.to_string(),
                }));
            }
            let found = OciDigest::from_bytes(self.hasher.clone().finalize().into());
            if found != self.digest {
                return Err(crate::to_io(OciError::DigestMismatch {
                    what: "blob".into(),
                    expected: self.digest.to_string(),
                    found: found.to_string(),
                }));
            }
        }
        Ok(n)
    }
}
