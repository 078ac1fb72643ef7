//! A small OCI distribution client: manifests, tags and blobs, with basic auth (ECR's
//! `GetAuthorizationToken` password, or plain credentials), the Bearer token challenge of other
//! registries, retries with backoff, a one-time credential refresh on 401, and a request count.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::MANIFEST_MEDIA_TYPES;
use crate::aws::Secret;

/// How to authenticate to a registry.
#[derive(Debug, Clone)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: Secret },
}

/// Fetches fresh credentials (e.g. a new ECR token) after a 401 in the middle of a copy.
pub type Refresh =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Credentials>> + Send>> + Send + Sync>;

/// A content descriptor: what a tag or digest points at.
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
    /// sha256 of `bytes`.
    pub digest: String,
}

/// A client for one registry.
#[derive(Clone)]
pub struct RegistryClient {
    base: url::Url,
    credentials: Arc<Mutex<Credentials>>,
    refresh: Option<Refresh>,
    /// Bearer token from a token service, when the registry asked for one.
    bearer: Arc<Mutex<Option<Secret>>>,
    http: reqwest::Client,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

const ATTEMPTS: u32 = 4;

impl RegistryClient {
    /// `base` is `scheme://host[:port]` (see [`super::endpoint_url`]).
    pub fn new(base: url::Url, credentials: Credentials) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(16)
            .build()
            .context("building the HTTP client")?;
        Ok(RegistryClient {
            base,
            credentials: Arc::new(Mutex::new(credentials)),
            refresh: None,
            bearer: Arc::new(Mutex::new(None)),
            http,
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Sets how to get fresh credentials after a 401 (tried once per request).
    pub fn with_refresh(mut self, refresh: Refresh) -> Self {
        self.refresh = Some(refresh);
        self
    }

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

    fn url(&self, path: &str) -> Result<url::Url> {
        self.base
            .join(path)
            .with_context(|| format!("bad registry path {path}"))
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(token) = self.bearer.lock().unwrap().as_ref() {
            return rb.bearer_auth(token.expose());
        }
        match &*self.credentials.lock().unwrap() {
            Credentials::Anonymous => rb,
            Credentials::Basic { username, password } => {
                rb.basic_auth(username, Some(password.expose()))
            }
        }
    }

    /// Sends a replayable request: retries 429, 5xx and dropped connections with backoff;
    /// on 401 answers a Bearer challenge or refreshes credentials, once.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: url::Url,
        headers: &[(&str, String)],
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response> {
        let mut reauthed = false;
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rb = self.authorize(self.http.request(method.clone(), url.clone()));
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            match rb.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthed => {
                    reauthed = true;
                    if self.reauthenticate(&resp).await? {
                        continue;
                    }
                    return Ok(resp);
                }
                Ok(resp) if retryable(resp.status()) && attempt < ATTEMPTS => {
                    tracing::debug!(
                        "{method} {}: {}; retrying in {delay:?}",
                        redact(&url),
                        resp.status()
                    );
                }
                Ok(resp) => return Ok(resp),
                Err(e)
                    if attempt < ATTEMPTS
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    tracing::debug!("{method} {}: {e}; retrying in {delay:?}", redact(&url));
                }
                Err(e) => return Err(anyhow!("{method} {}: {}", redact(&url), without_url(&e))),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    /// After a 401: fetch a Bearer token if challenged for one, else refresh credentials.
    /// Returns whether the request is worth repeating.
    async fn reauthenticate(&self, resp: &reqwest::Response) -> Result<bool> {
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Some(params) = parse_bearer_challenge(challenge) {
            let token = self.fetch_bearer(&params).await?;
            *self.bearer.lock().unwrap() = Some(token);
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
            *self.credentials.lock().unwrap() = fresh;
            return Ok(true);
        }
        Ok(false)
    }

    async fn fetch_bearer(&self, params: &[(String, String)]) -> Result<Secret> {
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow!("Bearer challenge without realm"))?;
        let mut url = url::Url::parse(&realm)
            .with_context(|| format!("token realm {realm:?} is not a URL"))?;
        for (k, v) in params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
        {
            url.query_pairs_mut().append_pair(k, v);
        }
        let mut rb = self.http.get(url.clone());
        if let Credentials::Basic { username, password } = &*self.credentials.lock().unwrap() {
            rb = rb.basic_auth(username, Some(password.expose()));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb
            .send()
            .await
            .map_err(|e| anyhow!("token service {}: {}", redact(&url), without_url(&e)))?;
        if !resp.status().is_success() {
            return Err(anyhow!(
                "token service {} answered {}: credentials rejected",
                redact(&url),
                resp.status()
            ));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp
            .json()
            .await
            .context("parsing the token service's answer")?;
        t.token
            .or(t.access_token)
            .map(Secret::new)
            .ok_or_else(|| anyhow!("the token service returned no token"))
    }

    /// GET a manifest by tag or digest with every supported media type accepted.
    /// `None` when it does not exist.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>> {
        let what = format!("{}/{repository}:{reference}", self.host());
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let resp = self
            .send(
                Method::GET,
                url,
                &[("Accept", MANIFEST_MEDIA_TYPES.join(", "))],
                None,
            )
            .await
            .with_context(|| format!("reading manifest {what}"))?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            s => return Err(status_error(s, &what, resp, Access::Read).await),
        }
        let media_type = header(&resp, "content-type").unwrap_or_default();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("reading manifest {what}"))?;
        let digest = sha256_digest(&bytes);
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
                digest: m.digest,
                media_type: m.media_type,
            }))
    }

    /// Whether a manifest exists (HEAD).
    pub async fn has_manifest(&self, repository: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repository}/manifests/{digest}"))?;
        let what = format!("{}/{repository}@{digest}", self.host());
        let resp = self
            .send(
                Method::HEAD,
                url,
                &[("Accept", MANIFEST_MEDIA_TYPES.join(", "))],
                None,
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
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let what = format!("{}/{repository}:{reference}", self.host());
        let resp = self
            .send(
                Method::PUT,
                url,
                &[("Content-Type", m.media_type.clone())],
                Some(m.bytes.clone()),
            )
            .await
            .with_context(|| format!("pushing manifest {what}"))?;
        if !resp.status().is_success() {
            return Err(status_error(resp.status(), &what, resp, Access::Write).await);
        }
        if let Some(d) = header(&resp, "docker-content-digest") {
            anyhow::ensure!(
                d == m.digest,
                "{what}: the registry stored digest {d}, not {} (it rewrote the manifest)",
                m.digest
            );
        }
        Ok(())
    }

    /// Whether a blob exists (HEAD).
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"))?;
        let what = format!("{}/{repository}@{digest}", self.host());
        let resp = self.send(Method::HEAD, url, &[], None).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(status_error(s, &what, resp, Access::Read).await),
        }
    }

    /// Tries a cross-repository mount; true when the registry mounted it (201).
    pub async fn mount_blob(&self, repository: &str, digest: &str, from: &str) -> Result<bool> {
        let mut url = self.url(&format!("/v2/{repository}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let resp = self
            .send(
                Method::POST,
                url,
                &[("Content-Length", "0".into())],
                Some(bytes::Bytes::new()),
            )
            .await?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    /// Starts a blob GET; the caller streams the body.
    pub async fn get_blob(&self, repository: &str, digest: &str) -> Result<reqwest::Response> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"))?;
        let what = format!("{}/{repository}@{digest}", self.host());
        let resp = self
            .send(Method::GET, url, &[], None)
            .await
            .with_context(|| format!("reading blob {what}"))?;
        if !resp.status().is_success() {
            return Err(status_error(resp.status(), &what, resp, Access::Read).await);
        }
        Ok(resp)
    }

    /// Uploads a blob from a stream: POST for an upload location, then one monolithic PUT with
    /// the streamed body (ECR's chunked PATCH quirks are avoided entirely).
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<()> {
        let what = format!("{}/{repository}@{digest}", self.host());
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"))?;
        let resp = self
            .send(
                Method::POST,
                url,
                &[("Content-Length", "0".into())],
                Some(bytes::Bytes::new()),
            )
            .await
            .with_context(|| format!("starting the upload of {what}"))?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(resp.status(), &what, resp, Access::Write).await);
        }
        let location = header(&resp, "location")
            .ok_or_else(|| anyhow!("{what}: upload answer without Location"))?;
        let mut put = self
            .base
            .join(&location)
            .with_context(|| format!("{what}: bad upload location"))?;
        put.query_pairs_mut().append_pair("digest", digest);
        // The body is a one-shot stream: no automatic retry here; the caller retries the blob.
        let rb = self
            .authorize(self.http.put(put.clone()))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string())
            .body(body);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb
            .send()
            .await
            .map_err(|e| anyhow!("PUT {}: {}", redact(&put), without_url(&e)))?;
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
        let mut next = Some(self.url(&format!("/v2/{repository}/tags/list?n=1000"))?);
        while let Some(url) = next.take() {
            let resp = self
                .send(Method::GET, url, &[], None)
                .await
                .with_context(|| format!("listing tags of {what}"))?;
            match resp.status() {
                StatusCode::NOT_FOUND => return Ok(tags),
                s if s.is_success() => {}
                s => return Err(status_error(s, &what, resp, Access::Read).await),
            }
            next = link_next(resp.headers()).and_then(|l| self.url(&l).ok());
            let page: TagList = resp
                .json()
                .await
                .with_context(|| format!("parsing the tag list of {what}"))?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
    }
}

fn retryable(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A URL without query or userinfo, safe to print.
fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// reqwest's error text without the URL it embeds (which may carry an upload token).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), &redact(u));
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// `Link: </v2/…?last=x&n=1000>; rel="next"`
fn link_next(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    link.contains("rel=\"next\"")
        .then(|| link[start..end].to_string())
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters.
pub fn parse_bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|c| *c != '"').collect()
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.push((key.trim().to_string(), value));
    }
    Some(params)
}

#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

async fn status_error(
    status: StatusCode,
    what: &str,
    resp: reqwest::Response,
    access: Access,
) -> anyhow::Error {
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    let hint = match (status, access) {
        (StatusCode::UNAUTHORIZED, _) => " (credentials rejected)".to_string(),
        (StatusCode::FORBIDDEN, Access::Read) => {
            " (access denied: the role needs ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on this repository, and the repository policy must allow it)".to_string()
        }
        (StatusCode::FORBIDDEN, Access::Write) => " (access denied: the role needs ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload, ecr:BatchCheckLayerAvailability and ecr:PutImage on this repository)".to_string(),
        _ => String::new(),
    };
    anyhow!("{what}: registry answered {status}{hint}: {}", body.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let p = parse_bearer_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(
            p,
            vec![
                (
                    "realm".to_string(),
                    "https://auth.example/token".to_string()
                ),
                ("service".to_string(), "registry.example".to_string()),
                ("scope".to_string(), "repository:a/b:pull,push".to_string()),
            ]
        );
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
    }

    #[test]
    fn redaction() {
        let u = url::Url::parse(
            "http://user:pw@127.0.0.1:5000/v2/a/blobs/uploads/x?_state=secret&digest=sha256:1",
        )
        .unwrap();
        assert_eq!(redact(&u), "http://127.0.0.1:5000/v2/a/blobs/uploads/x");
    }

    #[test]
    fn digest_of_bytes() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
