//! A small OCI distribution client: manifests, tags and blobs, with credentials bound to the
//! registry's origin ([`super::auth`]), the Bearer token challenge, one retry policy
//! ([`crate::retry`]), a one-time credential refresh on 401, bounded reads, a deadline on every
//! request, and a request count.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use reqwest::{Method, StatusCode};
use serde::Serialize;

use super::auth::{self, Challenge, Credentials};
use super::body::{header, read_limited, status_error, transient, Access};
use super::digest::Digest;
pub use super::location::resolve_location;
use super::manifest::{MAX_MANIFEST_BYTES, MEDIA_TYPES};
use super::names::{check_reference, check_repository};
use crate::redact;
use crate::retry::{self, Policy};
use crate::secret::Secret;

/// Fetches fresh credentials (e.g. a new ECR token) after a 401 in the middle of a copy.
pub type Refresh =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Credentials>> + Send>> + Send + Sync>;

/// What a tag points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A manifest exactly as the registry stored it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    /// The digest of `bytes` (computed here, never taken from a header).
    pub digest: Digest,
}

/// Deadline of one metadata request (manifests, HEADs, tokens, tag pages), body included.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// One page of a tag list.
const MAX_TAG_PAGE: usize = 4 * 1024 * 1024;
/// Pages of a tag list followed at most.
const MAX_TAG_PAGES: usize = 1000;

/// The deadline of a blob transfer of `size` bytes: two minutes plus 1 MiB/s.
pub fn blob_deadline(size: u64) -> Duration {
    Duration::from_secs(120 + size / (1024 * 1024))
}

/// A client for one registry.
/// HEADs and small manifest requests at once: latency-bound, so wide enough that the proof
/// of a 60-layer image (every blob and child HEADed at the destination) is one round trip;
/// as many idle connections are kept.
pub(super) const LOOKUPS: usize = 64;

#[derive(Clone)]
pub struct RegistryClient {
    base: url::Url,
    credentials: Arc<Mutex<Credentials>>,
    refresh: Option<Refresh>,
    /// Bearer token from a token service, when the registry asked for one.
    bearer: Arc<Mutex<Option<Secret>>>,
    http: reqwest::Client,
    requests: Arc<AtomicU64>,
    policy: Policy,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RegistryClient {
    /// `base` is `scheme://host[:port]` (see [`super::endpoint_url`]): https, or plain http
    /// on loopback only.
    pub fn new(base: url::Url, credentials: Credentials) -> Result<Self> {
        auth::check_base(&base)?;
        let http = reqwest::Client::builder()
            // Plain http is for loopback only (`check_base`): no TLS is spoken there, so the
            // platform's roots (a file per certificate, tens of milliseconds) are not loaded;
            // a redirect to https from such a registry fails as an unknown issuer.
            .tls_built_in_root_certs(base.scheme() == "https")
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(LOOKUPS)
            // Never https → http; reqwest itself drops Authorization on a host or port change.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("more than 10 redirects");
                }
                let verdict = match attempt.previous().last() {
                    Some(prev) => auth::redirect_allowed(prev, attempt.url()),
                    None => Ok(()),
                };
                match verdict {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(why),
                }
            }))
            .build()
            .context("building the HTTP client")?;
        Ok(RegistryClient {
            base,
            credentials: Arc::new(Mutex::new(credentials)),
            refresh: None,
            bearer: Arc::new(Mutex::new(None)),
            http,
            requests: Arc::new(AtomicU64::new(0)),
            policy: Policy::REQUESTS,
        })
    }

    /// Sets how to get fresh credentials after a 401 (tried once per request).
    pub fn with_refresh(mut self, refresh: Refresh) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// The registry's base URL (`scheme://host[:port]`).
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// `host[:port]`, for messages.
    pub fn host(&self) -> String {
        match self.base.port() {
            Some(p) => format!("{}:{p}", self.base.host_str().unwrap_or_default()),
            None => self.base.host_str().unwrap_or_default().to_string(),
        }
    }

    /// Requests sent so far (all clones share the count).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Whether `other` talks to the same registry (a cross-repository mount can work).
    pub fn same_registry(&self, other: &RegistryClient) -> bool {
        self.base == other.base
    }

    fn url(&self, repository: &str, rest: &str) -> Result<url::Url> {
        check_repository(repository)?;
        self.base
            .join(&format!("/v2/{repository}/{rest}"))
            .with_context(|| format!("bad registry path for {repository}"))
    }

    /// Adds credentials, only when `url` is on the registry's own origin.
    fn authorize(&self, rb: reqwest::RequestBuilder, url: &url::Url) -> reqwest::RequestBuilder {
        if !auth::origin_allows_credentials(&self.base, url) {
            return rb;
        }
        if let Some(token) = lock(&self.bearer).as_ref() {
            return rb.bearer_auth(token.expose());
        }
        match &*lock(&self.credentials) {
            Credentials::Anonymous => rb,
            Credentials::Basic { username, password } => {
                rb.basic_auth(username, Some(password.expose()))
            }
        }
    }

    /// Sends a replayable request: retries 408, 429, 5xx and dropped connections under the
    /// retry policy (honouring `Retry-After`); on 401 answers a Bearer challenge or refreshes
    /// credentials, once. Every attempt has `deadline` for its whole answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: url::Url,
        headers: &[(&str, String)],
        body: Option<bytes::Bytes>,
        deadline: Duration,
    ) -> Result<reqwest::Response> {
        auth::redirect_allowed(&self.base, &url).map_err(|e| anyhow!(e))?;
        let mut reauthed = false;
        let mut schedule = self.policy.schedule();
        loop {
            let mut rb = self
                .authorize(self.http.request(method.clone(), url.clone()), &url)
                .timeout(deadline);
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            tracing::trace!("{method} {}", redact::url(&url));
            let wait = match rb.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthed => {
                    reauthed = true;
                    if self.reauthenticate(&resp).await? {
                        continue;
                    }
                    return Ok(resp);
                }
                Ok(resp) if retry::retryable_status(resp.status().as_u16()) => {
                    let after = header(&resp, "retry-after")
                        .as_deref()
                        .and_then(retry::parse_retry_after);
                    match schedule.next_delay(after) {
                        Some(d) => {
                            tracing::debug!(
                                "{method} {}: {}; retrying in {d:?}",
                                redact::url(&url),
                                resp.status()
                            );
                            d
                        }
                        None => return Ok(resp),
                    }
                }
                Ok(resp) => return Ok(resp),
                Err(e) if transient(&e) => match schedule.next_delay(None) {
                    Some(d) => {
                        tracing::debug!(
                            "{method} {}: {}; retrying in {d:?}",
                            redact::url(&url),
                            redact::reqwest_error(&e)
                        );
                        d
                    }
                    None => {
                        return Err(anyhow!(
                            "{method} {}: {} (after {} attempts)",
                            redact::url(&url),
                            redact::reqwest_error(&e),
                            schedule.attempts()
                        ))
                    }
                },
                Err(e) => {
                    return Err(anyhow!(
                        "{method} {}: {}",
                        redact::url(&url),
                        redact::reqwest_error(&e)
                    ))
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// After a 401: fetch a Bearer token if challenged for one, else refresh credentials.
    /// Returns whether the request is worth repeating.
    async fn reauthenticate(&self, resp: &reqwest::Response) -> Result<bool> {
        let challenge = header(resp, "www-authenticate")
            .as_deref()
            .and_then(auth::parse_challenge);
        if let Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) = challenge
        {
            let token = self
                .fetch_bearer(&realm, service.as_deref(), scope.as_deref())
                .await?;
            *lock(&self.bearer) = Some(token);
            return Ok(true);
        }
        if let Some(refresh) = &self.refresh {
            tracing::info!(
                "{}: credentials rejected (401); fetching fresh ones and retrying once",
                self.host()
            );
            let fresh = refresh()
                .await
                .context("refreshing registry credentials after a 401")?;
            *lock(&self.credentials) = fresh;
            return Ok(true);
        }
        Ok(false)
    }

    async fn fetch_bearer(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Secret> {
        let credentials = lock(&self.credentials).clone();
        self.requests.fetch_add(1, Ordering::Relaxed);
        auth::fetch_token(
            &self.http,
            &self.base,
            &credentials,
            (realm, service, scope),
            REQUEST_DEADLINE,
        )
        .await
    }

    /// GET a manifest by tag or digest with every supported media type accepted; at most
    /// [`MAX_MANIFEST_BYTES`]. By digest, the bytes must hash to it. `None` when absent.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>> {
        check_reference(reference)?;
        let what = format!("{}/{repository}:{reference}", self.host());
        let url = self.url(repository, &format!("manifests/{reference}"))?;
        let resp = self
            .send(
                Method::GET,
                url,
                &[("Accept", MEDIA_TYPES.join(", "))],
                None,
                REQUEST_DEADLINE,
            )
            .await
            .with_context(|| format!("reading manifest {what}"))?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            s => return Err(status_error(s, &what, resp, Access::Read).await),
        }
        let media_type = header(&resp, "content-type")
            .filter(|t| t.len() <= 255)
            .unwrap_or_default();
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES)
            .await
            .with_context(|| format!("reading manifest {what}"))?;
        let digest = match Digest::parse(reference) {
            Ok(want) => {
                let got = want.of_same_kind(&bytes);
                if got != want {
                    return Err(SourceCorrupt(format!(
                        "{what}: the registry served a manifest whose digest is {got}"
                    ))
                    .into());
                }
                want
            }
            Err(_) => Digest::sha256_of(&bytes),
        };
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// What `repository:tag` points at now, or `None` when the tag (or repository) is absent.
    /// The digest is computed from the manifest bytes, not taken from a header.
    pub async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .get_manifest(repository, tag)
            .await?
            .map(|m| Descriptor {
                size: m.bytes.len() as u64,
                digest: m.digest.to_string(),
                media_type: m.media_type,
            }))
    }

    /// Whether a manifest exists (HEAD).
    pub async fn has_manifest(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let url = self.url(repository, &format!("manifests/{digest}"))?;
        let what = format!("{}/{repository}@{digest}", self.host());
        let resp = self
            .send(
                Method::HEAD,
                url,
                &[("Accept", MEDIA_TYPES.join(", "))],
                None,
                REQUEST_DEADLINE,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(status_error(s, &what, resp, Access::Read).await),
        }
    }

    /// PUT exact manifest bytes under `reference` (a digest or a tag).
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        m: &Manifest,
    ) -> Result<()> {
        check_reference(reference)?;
        let url = self.url(repository, &format!("manifests/{reference}"))?;
        let what = format!("{}/{repository}:{reference}", self.host());
        let resp = self
            .send(
                Method::PUT,
                url,
                &[("Content-Type", m.media_type.clone())],
                Some(m.bytes.clone()),
                REQUEST_DEADLINE,
            )
            .await
            .with_context(|| format!("pushing manifest {what}"))?;
        if !resp.status().is_success() {
            return Err(status_error(resp.status(), &what, resp, Access::Write).await);
        }
        if let Some(d) = header(&resp, "docker-content-digest") {
            anyhow::ensure!(
                d == m.digest.as_str(),
                "{what}: the registry stored digest {}, not {} (it rewrote the manifest)",
                d.chars().take(140).collect::<String>(),
                m.digest
            );
        }
        Ok(())
    }

    /// Whether a blob exists (HEAD).
    pub async fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let url = self.url(repository, &format!("blobs/{digest}"))?;
        let what = format!("{}/{repository}@{digest}", self.host());
        let resp = self
            .send(Method::HEAD, url, &[], None, REQUEST_DEADLINE)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(status_error(s, &what, resp, Access::Read).await),
        }
    }

    /// Tries a cross-repository mount; true when the registry mounted it (201).
    pub async fn mount_blob(&self, repository: &str, digest: &Digest, from: &str) -> Result<bool> {
        check_repository(from)?;
        let mut url = self.url(repository, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from);
        let resp = self
            .send(
                Method::POST,
                url,
                &[("Content-Length", "0".into())],
                Some(bytes::Bytes::new()),
                REQUEST_DEADLINE,
            )
            .await?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    /// Starts a blob GET; the caller streams (and hashes) the body. `None` for a 404.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<reqwest::Response>> {
        let url = self.url(repository, &format!("blobs/{digest}"))?;
        let what = format!("{}/{repository}@{digest}", self.host());
        let resp = self
            .send(Method::GET, url, &[], None, blob_deadline(size))
            .await
            .with_context(|| format!("reading blob {what}"))?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(resp)),
            s => Err(status_error(s, &what, resp, Access::Read).await),
        }
    }

    /// Uploads a blob from a stream: POST for an upload location (resolved per RFC 3986
    /// against the POST's URL; credentials go along only if it is on the registry's origin),
    /// then one monolithic PUT with the streamed body (ECR's chunked PATCH quirks avoided).
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
    ) -> Result<()> {
        let what = format!("{}/{repository}@{digest}", self.host());
        let url = self.url(repository, "blobs/uploads/")?;
        let resp = self
            .send(
                Method::POST,
                url.clone(),
                &[("Content-Length", "0".into())],
                Some(bytes::Bytes::new()),
                REQUEST_DEADLINE,
            )
            .await
            .with_context(|| format!("starting the upload of {what}"))?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(resp.status(), &what, resp, Access::Write).await);
        }
        let location = header(&resp, "location")
            .ok_or_else(|| anyhow!("{what}: upload answer without Location"))?;
        let mut put = resolve_location(&url, &location)
            .with_context(|| format!("{what}: the upload location"))?;
        put.query_pairs_mut().append_pair("digest", digest.as_str());
        if !auth::origin_allows_credentials(&self.base, &put) {
            tracing::warn!(
                "{what}: the registry sent the upload to another origin ({}); sending it there without credentials",
                redact::url(&put)
            );
        }
        // The body is a one-shot stream: no automatic retry here; the caller retries the blob.
        let rb = self
            .authorize(self.http.put(put.clone()), &put)
            .timeout(blob_deadline(size))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string())
            .body(body);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb
            .send()
            .await
            .map_err(|e| anyhow!("PUT {}: {}", redact::url(&put), redact::reqwest_error(&e)))?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(resp.status(), &what, resp, Access::Write).await);
        }
        Ok(())
    }

    /// Every tag of `repository` (empty when the repository does not exist).
    pub async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let what = format!("{}/{repository}", self.host());
        let mut tags = Vec::new();
        let mut next = Some(self.url(repository, "tags/list?n=1000")?);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            anyhow::ensure!(
                pages <= MAX_TAG_PAGES,
                "listing tags of {what}: more than {MAX_TAG_PAGES} pages"
            );
            let resp = self
                .send(Method::GET, url.clone(), &[], None, REQUEST_DEADLINE)
                .await
                .with_context(|| format!("listing tags of {what}"))?;
            match resp.status() {
                StatusCode::NOT_FOUND => return Ok(tags),
                s if s.is_success() => {}
                s => return Err(status_error(s, &what, resp, Access::Read).await),
            }
            if let Some(link) = header(&resp, "link").as_deref().and_then(super::link::next) {
                let n = resolve_location(&url, &link)
                    .with_context(|| format!("listing tags of {what}: the next-page link"))?;
                anyhow::ensure!(
                    auth::origin_allows_credentials(&self.base, &n),
                    "listing tags of {what}: the next-page link leaves the registry ({})",
                    redact::url(&n)
                );
                next = Some(n);
            }
            let body = read_limited(resp, MAX_TAG_PAGE)
                .await
                .with_context(|| format!("listing tags of {what}"))?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| anyhow!("parsing the tag list of {what}: {e}"))?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
    }
}

/// The bytes a source served do not match what the manifest promised: the source is at
/// fault, and reading it again will not help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceCorrupt(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_deadlines_grow_with_size() {
        assert_eq!(blob_deadline(0), Duration::from_secs(120));
        assert_eq!(blob_deadline(200 << 20), Duration::from_secs(320));
    }
}
