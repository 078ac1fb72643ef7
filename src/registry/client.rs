//! A small OCI distribution client: manifests and tags, with basic auth.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use reqwest::StatusCode;
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

/// A content descriptor: what a tag or digest points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A client for one registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: url::Url,
    credentials: Credentials,
    http: reqwest::Client,
}

impl RegistryClient {
    /// `base` is `scheme://host[:port]` (see [`super::endpoint_url`]).
    pub fn new(base: url::Url, credentials: Credentials) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(RegistryClient {
            base,
            credentials,
            http,
        })
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<url::Url> {
        self.base
            .join(path)
            .with_context(|| format!("bad registry path {path}"))
    }

    fn request(&self, method: reqwest::Method, url: url::Url) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.credentials {
            Credentials::Anonymous => rb,
            Credentials::Basic { username, password } => {
                rb.basic_auth(username, Some(password.expose()))
            }
        }
    }

    /// What `repository:tag` points at now, or `None` when the tag (or repository) is absent.
    /// The digest is computed from the manifest bytes, not taken from a header.
    pub async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Descriptor>> {
        let url = self.url(&format!("/v2/{repository}/manifests/{tag}"))?;
        let what = format!("{}{repository}:{tag}", self.display_host());
        let resp = self
            .request(reqwest::Method::GET, url)
            .header("Accept", MANIFEST_MEDIA_TYPES.join(", "))
            .send()
            .await
            .with_context(|| format!("reading manifest {what}"))?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            s => return Err(status_error(s, &what, resp).await),
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("reading manifest {what}"))?;
        Ok(Some(Descriptor {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            media_type,
            size: bytes.len() as u64,
        }))
    }

    /// Every tag of `repository` (empty when the repository does not exist).
    pub async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let what = format!("{}{repository}", self.display_host());
        let mut tags = Vec::new();
        let mut next = Some(self.url(&format!("/v2/{repository}/tags/list?n=1000"))?);
        while let Some(url) = next.take() {
            let resp = self
                .request(reqwest::Method::GET, url)
                .send()
                .await
                .with_context(|| format!("listing tags of {what}"))?;
            match resp.status() {
                StatusCode::NOT_FOUND => return Ok(tags),
                s if s.is_success() => {}
                s => return Err(status_error(s, &what, resp).await),
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

    fn display_host(&self) -> String {
        format!("{}/", self.base.host_str().unwrap_or_default())
    }
}

/// `Link: </v2/…?last=x&n=1000>; rel="next"`
fn link_next(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    link.contains("rel=\"next\"")
        .then(|| link[start..end].to_string())
}

async fn status_error(status: StatusCode, what: &str, resp: reqwest::Response) -> anyhow::Error {
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (credentials rejected)",
        StatusCode::FORBIDDEN => " (access denied: check the role's ecr:BatchGetImage / ecr:ListImages permissions and the repository policy)",
        _ => "",
    };
    anyhow!("{what}: registry answered {status}{hint}: {}", body.trim())
}
