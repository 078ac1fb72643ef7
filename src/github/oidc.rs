//! The GitHub Actions OIDC token: with `permissions: id-token: write`, the job can ask for a
//! short-lived token (audience `sts.amazonaws.com`) that STS exchanges for the environment's
//! role, so no long-lived AWS keys are stored anywhere.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::secret::Secret;

/// Where the GitHub Actions OIDC token comes from.
#[derive(Clone)]
pub struct OidcSource {
    /// `ACTIONS_ID_TOKEN_REQUEST_URL`
    pub request_url: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`
    pub request_token: Secret,
}

impl OidcSource {
    /// From `ACTIONS_ID_TOKEN_REQUEST_URL` / `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (set by GitHub
    /// Actions when the job has `permissions: id-token: write`).
    pub fn from_env() -> Option<Self> {
        let url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL")
            .ok()
            .filter(|s| !s.is_empty())?;
        let token = std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            .ok()
            .filter(|s| !s.is_empty())?;
        Some(OidcSource {
            request_url: url,
            request_token: Secret::new(token),
        })
    }

    /// Fetches a fresh ID token for the STS audience.
    pub async fn fetch(&self) -> Result<Secret> {
        let mut url = url::Url::parse(&self.request_url)
            .context("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")?;
        url.query_pairs_mut()
            .append_pair("audience", "sts.amazonaws.com");
        #[derive(serde::Deserialize)]
        struct Answer {
            value: String,
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let resp = client
            .get(url.clone())
            .header(
                "Authorization",
                format!("bearer {}", self.request_token.expose()),
            )
            .header("Accept", "application/json")
            .send()
            .await
            .with_context(|| {
                format!(
                    "requesting the GitHub OIDC token from {}",
                    crate::redact::url(&url)
                )
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(anyhow::anyhow!(
                "the GitHub OIDC token endpoint {} answered {status}",
                crate::redact::url(&url)
            ))
            .context("does the job have `permissions: id-token: write`?");
        }
        // A token is a few KiB: read at most 64 KiB of whatever answers.
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk.context("reading the GitHub OIDC token answer")?;
            anyhow::ensure!(
                body.len() + chunk.len() <= 64 * 1024,
                "the GitHub OIDC token answer is over 64 KiB"
            );
            body.extend_from_slice(&chunk);
        }
        let answer: Answer = serde_json::from_slice(&body)
            .ok()
            .context("the GitHub OIDC token answer is not {\"value\": …}")?;
        Ok(Secret::new(answer.value))
    }
}

impl std::fmt::Debug for OidcSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSource")
            .field("request_url", &"…")
            .finish_non_exhaustive()
    }
}
