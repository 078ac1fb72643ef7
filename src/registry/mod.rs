//! The OCI distribution API: reading and copying images between registries by digest.
//!
//! ECR is reached here like any registry (basic auth with a `GetAuthorizationToken`
//! password): that is the only way image bytes can move between repositories and accounts.
//! In the order data flows: [`auth`] decides which credentials go where (and gets ECR
//! tokens); [`client`] speaks the protocol, with `names` (repositories and references checked
//! before they reach a URL), `location` (RFC 3986 resolution of `Location` and `Link`) and
//! `body` (bounded reads, error text); [`digest`], [`manifest`] and [`link`] are the typed
//! values read from the network; [`copy`] moves a whole image graph, reading it through
//! `graph` (children before parents) and streaming blobs through `verify` (hashed on the way).

pub mod auth;
mod body;
pub mod client;
pub mod copy;
pub mod digest;
pub mod ecr;
mod graph;
pub mod link;
mod location;
pub mod manifest;
mod names;
pub mod referrers;
mod verify;

use anyhow::{bail, Context, Result};

pub use auth::Credentials;
pub use client::RegistryClient;
pub use digest::Digest;

/// `host[:port]/repository[:tag][@sha256:…]`, as `ferry copy` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageName {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.strip_prefix("docker://").unwrap_or(s);
        let (host, rest) = s
            .split_once('/')
            .filter(|(h, _)| h.contains('.') || h.contains(':') || *h == "localhost")
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{s:?} is not host/repository[:tag|@digest] (the registry host is required)"
                )
            })?;
        let (name, digest) = match rest.split_once('@') {
            Some((n, d)) => {
                if Digest::parse(d).is_err() {
                    bail!("{s:?}: {d:?} is not a digest (sha256:<64 lowercase hex>)");
                }
                (n, Some(d.to_string()))
            }
            None => (rest, None),
        };
        let (repository, tag) = match name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (name, None),
        };
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            bail!(
                "{s:?}: repository {repository:?} is not a valid name (lowercase, digits, . _ - /)"
            );
        }
        if tag.is_none() && digest.is_none() {
            bail!("{s:?} names no tag or digest; add :TAG or @sha256:…");
        }
        Ok(ImageName {
            host: host.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The reference to read: the digest when given, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or_default()
    }

    /// `(account, region)` when the host is exactly an ECR registry host ([`auth::EcrHost`]).
    pub fn ecr(&self) -> Option<(String, String)> {
        auth::EcrHost::parse(&self.host).map(|h| (h.account, h.region))
    }
}

/// Environment variable mapping registry hosts to base URLs, for registries that are not
/// where their name says (the local test world): `host=url[,host=url…]`, e.g.
/// `111111111111.dkr.ecr.us-east-1.amazonaws.com=http://127.0.0.1:5001`.
pub const ENDPOINTS_ENV: &str = "FERRY_REGISTRY_ENDPOINTS";

/// The base URL (`scheme://host[:port]`) for a registry host, honouring [`ENDPOINTS_ENV`].
pub fn endpoint_url(host: &str) -> Result<url::Url> {
    let map = std::env::var(ENDPOINTS_ENV).unwrap_or_default();
    endpoint_url_from(host, &map)
}

fn endpoint_url_from(host: &str, map: &str) -> Result<url::Url> {
    for entry in map.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((h, u)) = entry.split_once('=') else {
            bail!("{ENDPOINTS_ENV}: entry {entry:?} is not host=url");
        };
        if h.trim() == host {
            let url = url::Url::parse(u.trim())
                .with_context(|| format!("{ENDPOINTS_ENV}: {u:?} is not a URL"))?;
            auth::check_base(&url).with_context(|| format!("{ENDPOINTS_ENV}: {h}"))?;
            return Ok(url);
        }
    }
    url::Url::parse(&format!("https://{host}"))
        .with_context(|| format!("registry host {host:?} is not a host name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let d = format!("sha256:{}", "a".repeat(64));
        let n = ImageName::parse("127.0.0.1:5001/app/web:v1").unwrap();
        assert_eq!(
            (n.host.as_str(), n.repository.as_str(), n.tag.as_deref()),
            ("127.0.0.1:5001", "app/web", Some("v1"))
        );
        let n = ImageName::parse(&format!(
            "111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/api@{d}"
        ))
        .unwrap();
        assert_eq!(n.reference(), d);
        assert_eq!(n.ecr(), Some(("111111111111".into(), "eu-west-1".into())));
        let n = ImageName::parse(&format!("docker://localhost/x:t@{d}")).unwrap();
        assert_eq!(
            (n.tag.as_deref(), n.digest.as_deref()),
            (Some("t"), Some(d.as_str()))
        );
        assert!(n.ecr().is_none());
        let lookalike =
            ImageName::parse("111111111111.dkr.ecr.us-east-1.amazonaws.com.attacker.test/app:v1")
                .unwrap();
        assert_eq!(
            lookalike.ecr(),
            None,
            "a host that merely contains .amazonaws.com"
        );
        for bad in [
            "app:v1",
            "127.0.0.1:5001/app",
            "127.0.0.1:5001/App:v1",
            "h.io/app@sha256:12",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_mapping() {
        let map = "a.example=http://127.0.0.1:5001, b.example=http://127.0.0.1:5002";
        assert_eq!(
            endpoint_url_from("b.example", map).unwrap().as_str(),
            "http://127.0.0.1:5002/"
        );
        assert_eq!(
            endpoint_url_from("c.example", map).unwrap().as_str(),
            "https://c.example/"
        );
        assert!(endpoint_url_from("c.example", "junk").is_err());
        assert!(
            endpoint_url_from("c.example", "c.example=http://10.1.2.3:5000").is_err(),
            "plain http only on loopback"
        );
    }
}
