//! One way to make a URL or an HTTP error safe to print.
//!
//! Upload locations carry state tokens in their query, presigned blob URLs carry signatures,
//! and a URL may carry `user:password@`. Everything ferry prints about a URL goes through
//! [`url()`] (or [`url_str`] for text that may not even parse), and every `reqwest` error through
//! [`reqwest_error`], which also replaces the URL reqwest embeds in its message.

/// `scheme://host[:port]/path`: no userinfo, no query, no fragment.
pub fn url(u: &url::Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// [`url()`] for text that may not be a URL; text that does not parse is replaced entirely.
pub fn url_str(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(u) => url(&u),
        Err(_) => "<not a URL>".to_string(),
    }
}

/// A reqwest error with its cause chain, the URL it names redacted.
pub fn reqwest_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), &url(u));
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_query_and_fragment() {
        let u = url::Url::parse(
            "http://user:pw@127.0.0.1:5000/v2/a/blobs/uploads/x?_state=secret&digest=sha256:1#frag",
        )
        .unwrap();
        assert_eq!(url(&u), "http://127.0.0.1:5000/v2/a/blobs/uploads/x");
        assert_eq!(
            url_str("https://s3.example/bucket/key?X-Amz-Signature=abc"),
            "https://s3.example/bucket/key"
        );
        assert_eq!(url_str("not a url with pw=secret"), "<not a URL>");
    }
}
