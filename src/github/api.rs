//! The plumbing under the run's GitHub conversation (`deployments`): where and as whom to talk
//! to GitHub ([`Settings`], from the Actions environment), the octocrab client with the REST API
//! version and time limits ([`build_client`]), one bounded request before a deadline ([`call`]),
//! what can go wrong with it ([`CallError`]), and reading answers ([`parse`], [`status_error`]).
//! Untrusted text is made safe for one log line ([`bounded`]), descriptions fit GitHub's limit
//! ([`limit`]), query values are encoded ([`encode`]); the request and answer bodies of the
//! REST operations used are small typed structs. The run's session and its decisions live in
//! `deployments`, which uses this module, never the other way round.

use std::time::Duration;

use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::secret::Secret;

/// The most time all GitHub calls of one run may take together.
pub(super) const DEFAULT_BUDGET: Duration = Duration::from_secs(20);
/// The most one step (creating the deployment, finishing it, looking up a release) may take.
pub(super) const STEP_LIMIT: Duration = Duration::from_secs(10);
/// The REST API version whose published description the requests follow.
const API_VERSION: &str = "2022-11-28";
/// The largest answer read from GitHub.
const MAX_ANSWER: usize = 1 << 20;
/// GitHub's limit for a deployment status description.
const MAX_DESCRIPTION: usize = 140;

/// Where and as whom to talk to GitHub.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// REST API root: `GITHUB_API_URL`, else `https://api.github.com`.
    pub api_url: String,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// `GITHUB_TOKEN`.
    pub token: Secret,
    /// This run's log page, when running in GitHub Actions.
    pub log_url: Option<String>,
    /// The repository's deployments page (`<server>/<owner>/<repo>/deployments`).
    pub deployments_page: Option<String>,
    /// Time budget for all calls of the run.
    pub budget: Duration,
}

impl Settings {
    /// From the process environment; `repository_hint` (`owner/name` from the event) is used when
    /// `GITHUB_REPOSITORY` is unset. `Err` says why GitHub is not used.
    pub fn from_env(repository_hint: Option<&str>) -> Result<Settings, String> {
        Self::from_vars(|k| std::env::var(k).ok(), repository_hint)
    }

    /// From any variable lookup (tests pass a map).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        repository_hint: Option<&str>,
    ) -> Result<Settings, String> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let token = var("GITHUB_TOKEN").ok_or("GITHUB_TOKEN is not set")?;
        let repository = var("GITHUB_REPOSITORY")
            .or_else(|| repository_hint.map(str::to_string))
            .ok_or("GITHUB_REPOSITORY is not set")?;
        let (owner, repo) = split_repository(&repository)
            .ok_or_else(|| format!("GITHUB_REPOSITORY {repository:?} is not owner/name"))?;
        let api_url = api_root(var("GITHUB_API_URL").as_deref())?;
        let log_url = super::actions::run_url_from(
            var("GITHUB_SERVER_URL").as_deref(),
            Some(&repository),
            var("GITHUB_RUN_ID").as_deref(),
            var("GITHUB_RUN_ATTEMPT").as_deref(),
        );
        let deployments_page = super::actions::repository_page(
            var("GITHUB_SERVER_URL").as_deref(),
            &repository,
            "deployments",
        );
        Ok(Settings {
            api_url,
            owner: owner.to_string(),
            repo: repo.to_string(),
            token: Secret::new(token),
            log_url,
            deployments_page,
            budget: DEFAULT_BUDGET,
        })
    }
}

/// `owner/name`, each a GitHub name (letters, digits, `-`, `_`, `.`).
fn split_repository(s: &str) -> Option<(&str, &str)> {
    let (owner, repo) = s.split_once('/')?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p != "."
            && p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    (ok(owner) && ok(repo)).then_some((owner, repo))
}

/// The REST API root, checked: http(s), no credentials, query or fragment; no trailing `/`.
fn api_root(value: Option<&str>) -> Result<String, String> {
    let Some(value) = value else {
        return Ok("https://api.github.com".to_string());
    };
    let url = url::Url::parse(value.trim())
        .map_err(|e| format!("GITHUB_API_URL {value:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "GITHUB_API_URL {value:?} must be an http(s) URL without credentials, query or fragment"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Why a call to GitHub did not give what was asked.
#[derive(Debug)]
pub(super) enum CallError {
    /// The step's share of the budget ran out.
    Timeout(Duration),
    /// GitHub answered with this status (and its `message`, if any).
    Status(u16, String),
    /// No answer (connection refused, TLS, reset…).
    Transport(String),
    /// An answer that is not what the description says.
    Answer(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout(d) => write!(f, "GitHub did not answer within {}s", d.as_secs_f32()),
            CallError::Status(code, msg) if msg.is_empty() => {
                write!(f, "GitHub answered HTTP {code}")
            }
            CallError::Status(code, msg) => write!(f, "GitHub answered HTTP {code}: {msg}"),
            CallError::Transport(e) => write!(f, "cannot reach GitHub: {e}"),
            CallError::Answer(e) => write!(f, "GitHub's answer is not usable: {e}"),
        }
    }
}

impl CallError {
    /// A hint for the answers a workflow can fix.
    pub(super) fn hint(&self) -> &'static str {
        match self {
            CallError::Status(401, _) => " (is GITHUB_TOKEN valid?)",
            CallError::Status(403 | 404, _) => {
                " (does the job have `permissions: deployments: write` and `contents: read`?)"
            }
            _ => "",
        }
    }
}

/// The `message` of a GitHub error answer.
#[derive(Deserialize)]
pub(super) struct ErrorAnswer {
    message: Option<String>,
}

/// An octocrab client for `settings`: token, API version header, time limits.
pub(super) fn build_client(settings: &Settings) -> Result<Octocrab, String> {
    let version = http::HeaderName::from_static("x-github-api-version");
    Octocrab::builder()
        .base_uri(settings.api_url.as_str())
        .map_err(|e| format!("bad GITHUB_API_URL: {e}"))?
        .personal_token(settings.token.expose().to_string())
        .add_header(version, API_VERSION.to_string())
        .add_header(
            http::header::ACCEPT,
            "application/vnd.github+json".to_string(),
        )
        .set_connect_timeout(Some(STEP_LIMIT))
        .set_read_timeout(Some(STEP_LIMIT))
        .set_write_timeout(Some(STEP_LIMIT))
        .build()
        .map_err(|e| e.to_string())
}

/// The HTTP methods ferry uses.
#[derive(Clone, Copy)]
pub(super) enum Verb {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

/// One request through octocrab's generic methods, answer read bounded, before `deadline`.
pub(super) async fn call<B: Serialize>(
    client: &Octocrab,
    deadline: Instant,
    verb: Verb,
    route: &str,
    body: Option<&B>,
) -> Result<(u16, bytes::Bytes), CallError> {
    let limit = deadline.saturating_duration_since(Instant::now());
    let work = async {
        let response = match verb {
            Verb::Get => client._get(route).await,
            Verb::Post => client._post(route, body).await,
        }
        .map_err(octocrab_error)?;
        let status = response.status().as_u16();
        let bytes = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| CallError::Transport(bounded(&e.to_string())))?
            .to_bytes();
        Ok((status, bytes))
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout(limit)),
    }
}

/// An octocrab error as a [`CallError`], its text bounded.
pub(super) fn octocrab_error(e: octocrab::Error) -> CallError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            CallError::Status(source.status_code.as_u16(), bounded(&source.message))
        }
        other => {
            // The source chain says what failed (refused, TLS…); octocrab's own text is generic.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                text = s.to_string();
                source = s.source();
            }
            CallError::Transport(bounded(&text))
        }
    }
}

/// An answer body as `T`.
pub(super) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(bytes).map_err(|e| CallError::Answer(bounded(&e.to_string())))
}

/// An unexpected status, with GitHub's `message` if the body has one.
pub(super) fn status_error(code: u16, bytes: &[u8]) -> CallError {
    let message = serde_json::from_slice::<ErrorAnswer>(bytes)
        .ok()
        .and_then(|e| e.message)
        .map(|m| bounded(&m))
        .unwrap_or_default();
    CallError::Status(code, message)
}

/// Untrusted text made safe for one log line: no control characters, at most 300 characters.
pub(super) fn bounded(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// A status description within GitHub's 140 characters.
pub(super) fn limit(s: &str) -> String {
    if s.chars().count() <= MAX_DESCRIPTION {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_DESCRIPTION - 1).collect();
    out.push('…');
    out
}

/// A query value, form-encoded.
pub(super) fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// The bodies of the REST operations used: what is sent, and what is read from the answers.

/// `POST /repos/{owner}/{repo}/deployments`.
#[derive(Serialize)]
pub(super) struct CreateDeployment<'a> {
    pub(super) r#ref: &'a str,
    pub(super) task: &'a str,
    pub(super) auto_merge: bool,
    pub(super) required_contexts: [&'a str; 0],
    pub(super) payload: Payload<'a>,
    pub(super) environment: &'a str,
    pub(super) description: String,
    pub(super) transient_environment: bool,
    pub(super) production_environment: bool,
}

/// The deployment's `payload`: what ferry deployed.
#[derive(Serialize)]
pub(super) struct Payload<'a> {
    pub(super) tool: &'a str,
    pub(super) ferry_version: &'a str,
    pub(super) tag: &'a str,
    pub(super) version: &'a str,
    pub(super) digest: &'a str,
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
#[derive(Serialize)]
pub(super) struct CreateStatus<'a> {
    pub(super) state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) log_url: Option<&'a str>,
    pub(super) description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) environment_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) auto_inactive: Option<bool>,
}

/// A deployment, as GitHub answers it (created or listed).
#[derive(Deserialize)]
pub(super) struct DeploymentAnswer {
    pub(super) id: u64,
    pub(super) url: String,
    #[serde(default)]
    pub(super) production_environment: Option<bool>,
}

/// A deployment status, as GitHub answers it (created or listed).
#[derive(Deserialize)]
pub(super) struct StatusAnswer {
    #[serde(default)]
    pub(super) id: u64,
    pub(super) state: String,
}
