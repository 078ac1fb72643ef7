//! Reading answers without trusting their size: whole bodies up to a limit, error bodies
//! as a short prefix, and the error text of a refused request.

use std::time::Duration;

use anyhow::{anyhow, Result};
use futures_util::StreamExt;
use reqwest::StatusCode;

use crate::redact;

/// Error answers are read up to this much (and shown shorter).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Reads a whole body of at most `limit` bytes; more is an error, found out without holding
/// more than `limit` bytes.
pub async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<bytes::Bytes> {
    if let Some(n) = resp.content_length() {
        anyhow::ensure!(
            n <= limit as u64,
            "the answer is {n} bytes, over the limit of {limit}"
        );
    }
    let mut buf = bytes::BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow!(redact::reqwest_error(&e)))?;
        anyhow::ensure!(
            buf.len() + chunk.len() <= limit,
            "the answer is over the limit of {limit} bytes"
        );
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The first `limit` bytes of a body (an error answer), the rest dropped unread.
async fn read_prefix(resp: reqwest::Response, limit: usize) -> String {
    let mut buf = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let take = (limit - buf.len()).min(chunk.len());
        buf.extend_from_slice(&chunk[..take]);
        if buf.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[derive(Clone, Copy)]
pub(super) enum Access {
    Read,
    Write,
}

pub(super) async fn status_error(
    status: StatusCode,
    what: &str,
    resp: reqwest::Response,
    access: Access,
) -> anyhow::Error {
    let body = tokio::time::timeout(Duration::from_secs(10), read_prefix(resp, MAX_ERROR_BODY))
        .await
        .unwrap_or_default();
    let body: String = body.chars().filter(|c| !c.is_control()).take(300).collect();
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

/// Whether a failed request may succeed when repeated: dropped connections, timeouts and
/// refused connections are; a name that does not resolve or a TLS handshake that fails are not.
pub(super) fn transient(e: &reqwest::Error) -> bool {
    if !(e.is_connect() || e.is_timeout() || e.is_request()) {
        return false;
    }
    let text = redact::reqwest_error(e).to_ascii_lowercase();
    ![
        "dns error",
        "certificate",
        "invalidcontenttype",
        "tls handshake",
    ]
    .iter()
    .any(|p| text.contains(p))
}

/// A header as text, if present and printable.
pub(super) fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
