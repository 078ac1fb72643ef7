//! The OCI distribution API: reading and copying images between registries by digest.
//!
//! ECR is reached here like any registry (basic auth with a `GetAuthorizationToken`
//! password): that is the only way image bytes can move between repositories and accounts.

pub mod client;

use anyhow::{bail, Context, Result};

pub use client::{Credentials, Descriptor, RegistryClient};

/// Every manifest media type ferry understands, for `Accept`.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

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
    }
}
