//! Where a registry sends ferry next: an upload `Location` or a pagination `Link`, resolved
//! per RFC 3986 against the URL of the request that received it.

use anyhow::{anyhow, Result};

use super::auth;
use crate::redact;

/// Resolves a `Location` (or `Link`) value per RFC 3986 against the URL of the request that
/// received it; only http(s), never https → http, at most 8 KiB.
pub fn resolve_location(request: &url::Url, value: &str) -> Result<url::Url> {
    anyhow::ensure!(value.len() <= 8 * 1024, "the location is over 8 KiB");
    let url = request
        .join(value.trim())
        .map_err(|_| anyhow!("{} is not a URL reference", redact::url_str(value)))?;
    auth::redirect_allowed(request, &url).map_err(|e| anyhow!(e))?;
    anyhow::ensure!(url.host().is_some(), "the location has no host");
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_request_url() {
        let post = url::Url::parse("http://127.0.0.1:5000/v2/app/blobs/uploads/").unwrap();
        let r = |v: &str| resolve_location(&post, v).map(|u| u.to_string());
        assert_eq!(
            r("/v2/app/blobs/uploads/u1?_state=x").unwrap(),
            "http://127.0.0.1:5000/v2/app/blobs/uploads/u1?_state=x"
        );
        assert_eq!(
            r("u2?_state=y").unwrap(),
            "http://127.0.0.1:5000/v2/app/blobs/uploads/u2?_state=y",
            "relative to the POST URL, not the registry root"
        );
        assert_eq!(
            r("../other/u3").unwrap(),
            "http://127.0.0.1:5000/v2/app/blobs/other/u3"
        );
        assert_eq!(
            r("https://uploads.example/u4").unwrap(),
            "https://uploads.example/u4"
        );
        let https = url::Url::parse("https://r.example/v2/app/blobs/uploads/").unwrap();
        assert!(resolve_location(&https, "http://r.example/u").is_err());
        assert!(resolve_location(&post, "file:///etc/passwd").is_err());
        assert!(resolve_location(&post, &"a".repeat(9000)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn location_never_panics(s in "\\PC{0,100}") {
            let post = url::Url::parse("https://r.example/v2/app/blobs/uploads/").unwrap();
            if let Ok(u) = resolve_location(&post, &s) {
                proptest::prop_assert!(u.scheme() == "https");
            }
        }
    }
}
