//! GitHub deployments for a run, and the release behind a `workflow_dispatch`.
//!
//! With `GITHUB_TOKEN` (and `GITHUB_REPOSITORY`, or the event's repository), each run creates
//! one GitHub deployment: `ref` = the release tag, `environment` = ferry's environment,
//! `auto_merge: false`, `required_contexts: []`, `production_environment` for final
//! environments, a payload naming the digest and version. It posts `in_progress` when the
//! rollout starts and `success` / `failure` / `error` at the end, each with the run's log URL
//! (`$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/attempts/$GITHUB_RUN_ATTEMPT`).
//! After a successful production deploy it marks the older production deployments of that
//! environment `inactive`: GitHub's `auto_inactive` only does that for non-production ones.
//!
//! For a `workflow_dispatch`, [`Session::check_dispatch_release`] looks the release up by tag
//! (octocrab's typed releases API) and refuses what the release event refuses: drafts (the API
//! only returns published releases: a draft is "not found") and a pre-release flag that
//! contradicts the tag (`event::check_prerelease_flag`), both exit 2 with a hint.
//!
//! GitHub is a witness, never a gate: a GitHub that is down, slow, or refuses the token never
//! blocks or fails a deploy. Every problem becomes one warning line and an entry in
//! [`GithubReport::warnings`]; all calls of a run share a short time budget
//! ([`DEFAULT_BUDGET`](super::api::DEFAULT_BUDGET)). Answers are read bounded and parsed into
//! small types; the token is never printed. `GITHUB_API_URL` (GitHub Enterprise Server:
//! `https://HOST/api/v3`) is octocrab's base URI. The HTTP plumbing (settings, client, calls,
//! request and answer bodies) is in `github::api`.
//!
//! How a run uses it (the call sites, in order):
//!
//! ```text
//! let mut gh = github::deployments::Session::from_env(trigger.repository.as_deref());
//! gh.check_dispatch_release(&mut trigger, &tag).await?;       // after the tag is parsed, before planning
//! gh.start(&DeploymentRequest::new(&tag, env_name, &digest)).await;   // just before the rollout
//! gh.progress("smoke failed; rolling back to v1.0.0").await;  // optional, any number of times
//! gh.finish(Outcome::from_result(&result), &summary).await;   // after rollout/smoke/rollback
//! report.github = Some(gh.report().clone());                   // the JSON result's "github" field
//! ```

use std::time::Duration;

use anyhow::Result;
use octocrab::Octocrab;
use serde::Serialize;
use tokio::time::Instant;

use super::api::{
    bounded, build_client, call, encode, limit, octocrab_error, parse, status_error, CallError,
    CreateDeployment, CreateStatus, DeploymentAnswer, Payload, Settings, StatusAnswer, Verb,
    STEP_LIMIT,
};
use crate::error::{classify, Failure, FailureKind};
use crate::github::event::{check_prerelease_flag, Trigger, TriggerSource};
use crate::tag::ReleaseTag;

/// How many earlier deployments of the environment are looked at for inactivation.
const OLDER_LOOKED_AT: usize = 30;

/// What one run deploys, for its GitHub deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRequest {
    /// The release tag (the deployment's `ref`).
    pub tag: String,
    /// The version, e.g. `1.4.0-rc.2`.
    pub version: String,
    /// ferry's environment name.
    pub environment: String,
    /// A final environment (production): `production_environment: true`.
    pub production: bool,
    /// The image digest deployed.
    pub digest: String,
    /// Where the environment can be reached (e.g. the smoke URL), if known.
    pub environment_url: Option<String>,
    /// An environment of several targets: their names, wave by wave (named in the
    /// description).
    pub waves: Vec<Vec<String>>,
}

impl DeploymentRequest {
    /// A deployment of `tag` to `environment`; final tags deploy to production environments.
    pub fn new(tag: &ReleaseTag, environment: &str, digest: &str) -> Self {
        DeploymentRequest {
            tag: tag.tag.clone(),
            version: tag.version.to_string(),
            environment: environment.to_string(),
            production: !tag.is_prerelease(),
            digest: digest.to_string(),
            environment_url: None,
            waves: Vec::new(),
        }
    }

    /// The deployment's description: the release, its digest, the environment, and its
    /// targets wave by wave (`in us-east-1, then eu-west-1 + ap-southeast-2`).
    pub fn description(&self) -> String {
        let mut d = format!(
            "ferry: {} ({}) to {}",
            self.tag,
            short_digest(&self.digest),
            self.environment
        );
        if !self.waves.is_empty() {
            let waves: Vec<String> = self.waves.iter().map(|w| w.join(" + ")).collect();
            d.push_str(&format!(" in {}", waves.join(", then ")));
        }
        limit(&d)
    }
}

/// How the run ended, as a GitHub deployment state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Deployed and verified: `success`.
    Success,
    /// The release failed and the environment was rolled back: `failure`.
    Failure,
    /// Anything else (not known to be good, operational error): `error`.
    Error,
}

impl Outcome {
    /// From the run's result: exit 0 → success, 4 (rolled back) → failure, else error.
    pub fn from_result<T>(result: &Result<T>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => match classify(e).map(|f| f.kind) {
                Some(FailureKind::RolledBack) => Outcome::Failure,
                _ => Outcome::Error,
            },
        }
    }

    fn state(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Error => "error",
        }
    }
}

/// What happened on GitHub, for the run's result (`"github"` in the JSON output).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GithubReport {
    /// Why nothing was sent to GitHub (no token, no repository), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The deployment created for this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<u64>,
    /// Its API URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_url: Option<String>,
    /// The statuses posted, in order (`in_progress`, then `success`…).
    pub states: Vec<String>,
    /// Older production deployments this run marked inactive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inactivated: Vec<u64>,
    /// The log URL given to GitHub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The repository's deployments page, once a deployment was recorded there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// The release looked up for a workflow_dispatch: its page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_url: Option<String>,
    /// Everything that went wrong with GitHub; none of it failed the deploy.
    pub warnings: Vec<String>,
}

/// One run's conversation with GitHub. Never fails the run, except for the dispatch refusals.
pub struct Session {
    settings: Option<Settings>,
    client: Option<Octocrab>,
    spent: Duration,
    production: bool,
    tag: String,
    environment: String,
    report: GithubReport,
}

impl Session {
    /// A session for this process's environment. Without `GITHUB_TOKEN` or a repository it does
    /// nothing, and says why in its report.
    pub fn from_env(repository_hint: Option<&str>) -> Session {
        Session::new(Settings::from_env(repository_hint))
    }

    /// A session for these settings (`Err`: GitHub is not used, for this reason).
    pub fn new(settings: Result<Settings, String>) -> Session {
        let mut report = GithubReport::default();
        let settings = match settings {
            Ok(s) => {
                report.log_url = s.log_url.clone();
                Some(s)
            }
            Err(reason) => {
                report.skipped = Some(reason);
                None
            }
        };
        Session {
            settings,
            client: None,
            spent: Duration::ZERO,
            production: false,
            tag: String::new(),
            environment: String::new(),
            report,
        }
    }

    /// What happened so far.
    pub fn report(&self) -> &GithubReport {
        &self.report
    }

    /// For a `workflow_dispatch`: looks the release up by tag and refuses (exit 2) a draft, a
    /// tag with no published release, or a pre-release flag that contradicts the tag. Fills in
    /// `trigger.release_prerelease` and `trigger.release_url`. Other triggers: nothing. GitHub
    /// down or no token: a warning, and the run goes on with the tag alone.
    pub async fn check_dispatch_release(
        &mut self,
        trigger: &mut Trigger,
        tag: &ReleaseTag,
    ) -> Result<()> {
        if trigger.source != TriggerSource::WorkflowDispatch {
            return Ok(());
        }
        let Some((client, deadline)) = self.step("looking up the release").await else {
            let why = (self.report.skipped.clone())
                .unwrap_or_else(|| "no time left for GitHub".to_string());
            self.warn(format!(
                "release {tag} was not looked up on GitHub ({why}); deploying on the tag alone"
            ));
            return Ok(());
        };
        let (owner, repo) = self.repository();
        if !tag
            .tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        {
            return Err(
                Failure::invalid(format!("tag {:?} cannot name a release", tag.tag)).into(),
            );
        }
        let started = Instant::now();
        let allowed = deadline.saturating_duration_since(started);
        let answer = tokio::time::timeout_at(
            deadline,
            client.repos(&owner, &repo).releases().get_by_tag(&tag.tag),
        )
        .await;
        self.spent += started.elapsed();
        let release = match answer {
            Ok(Ok(release)) => release,
            Ok(Err(octocrab::Error::GitHub { source, .. }))
                if source.status_code.as_u16() == 404 =>
            {
                return Err(Failure::invalid(format!(
                    "no published release has the tag {tag} in {owner}/{repo} (a draft is not published); drafts never deploy"
                ))
                .hint("publish the release to deploy it (or pass --tag to deploy a tag without a release); a private repository also needs `permissions: contents: read`")
                .into());
            }
            Ok(Err(e)) => {
                let e = octocrab_error(e);
                let hint = e.hint();
                self.warn(format!(
                    "release {tag} could not be looked up: {e}{hint}; deploying on the tag alone"
                ));
                return Ok(());
            }
            Err(_) => {
                let e = CallError::Timeout(allowed);
                self.warn(format!(
                    "release {tag} could not be looked up: {e}; deploying on the tag alone"
                ));
                return Ok(());
            }
        };
        if release.tag_name != tag.tag {
            self.warn(format!(
                "GitHub answered release {:?} for tag {tag}; not used",
                bounded(&release.tag_name)
            ));
            return Ok(());
        }
        if release.draft {
            return Err(Failure::invalid(format!(
                "release {tag} is a draft (GitHub says `draft: true`); drafts never deploy"
            ))
            .hint("publish the release to deploy it")
            .into());
        }
        let url = bounded(release.html_url.as_str());
        trigger.release_prerelease = Some(release.prerelease);
        trigger.release_url = Some(url.clone());
        self.report.release_url = Some(url);
        check_prerelease_flag(trigger, tag)
    }

    /// Creates the run's deployment and posts `in_progress`. Call just before the rollout.
    pub async fn start(&mut self, req: &DeploymentRequest) {
        self.production = req.production;
        self.tag = req.tag.clone();
        self.environment = req.environment.clone();
        let Some((client, deadline)) = self.step("creating the deployment").await else {
            return;
        };
        let (owner, repo) = self.repository();
        let started = Instant::now();
        let body = CreateDeployment {
            r#ref: &req.tag,
            task: "deploy",
            auto_merge: false,
            required_contexts: [],
            payload: Payload {
                tool: "ferry",
                ferry_version: env!("CARGO_PKG_VERSION"),
                tag: &req.tag,
                version: &req.version,
                digest: &req.digest,
            },
            environment: &req.environment,
            description: req.description(),
            transient_environment: false,
            production_environment: req.production,
        };
        let route = format!("/repos/{owner}/{repo}/deployments");
        let created = call(&client, deadline, Verb::Post, &route, Some(&body)).await;
        let created = match created {
            Ok((201, bytes)) => parse::<DeploymentAnswer>(&bytes),
            Ok((202, _)) => Err(CallError::Answer(
                "GitHub merged the default branch instead of creating a deployment".into(),
            )),
            Ok((code, bytes)) => Err(status_error(code, &bytes)),
            Err(e) => Err(e),
        };
        match created {
            Ok(d) => {
                self.report.deployment_id = Some(d.id);
                self.report.deployment_url = Some(bounded(&d.url));
                self.report.page_url = self
                    .settings
                    .as_ref()
                    .and_then(|s| s.deployments_page.clone());
                if d.production_environment
                    .is_some_and(|p| p != req.production)
                {
                    self.warn(format!(
                        "GitHub recorded deployment {} with production_environment = {}",
                        d.id, !req.production
                    ));
                }
            }
            Err(e) => {
                let hint = e.hint();
                self.warn(format!(
                    "no GitHub deployment for {} to {}: {e}{hint}",
                    req.tag, req.environment
                ));
                self.spent += started.elapsed();
                return;
            }
        }
        let description = format!("deploying {} to {}", req.tag, req.environment);
        let status = CreateStatus {
            state: "in_progress",
            log_url: self.report.log_url.as_deref(),
            description: limit(&description),
            environment_url: req.environment_url.as_deref(),
            auto_inactive: None,
        };
        let posted = self.post_status(&client, deadline, &status).await;
        self.record_status("in_progress", posted);
        self.spent += started.elapsed();
    }

    /// Posts another `in_progress` with a new description (e.g. "smoke test failed; rolling
    /// back to v1.0.0"), so the deployment page says what the run is doing now.
    pub async fn progress(&mut self, description: &str) {
        if self.report.deployment_id.is_none() {
            return;
        }
        let Some((client, deadline)) = self.step("updating the deployment").await else {
            return;
        };
        let started = Instant::now();
        let status = CreateStatus {
            state: "in_progress",
            log_url: self.report.log_url.as_deref(),
            description: limit(description),
            environment_url: None,
            auto_inactive: None,
        };
        let posted = self.post_status(&client, deadline, &status).await;
        self.record_status("in_progress", posted);
        self.spent += started.elapsed();
    }

    /// Posts the final state with the log URL; after a production success, marks the older
    /// production deployments of the environment inactive. Call once, at the end of the run.
    pub async fn finish(&mut self, outcome: Outcome, description: &str) {
        if self.report.deployment_id.is_none() {
            return; // nothing to finish; start() said why
        }
        let Some((client, deadline)) = self.step("finishing the deployment").await else {
            return;
        };
        let started = Instant::now();
        let success = outcome == Outcome::Success;
        let status = CreateStatus {
            state: outcome.state(),
            log_url: self.report.log_url.as_deref(),
            description: limit(description),
            environment_url: None,
            // GitHub inactivates earlier non-production deployments itself on success.
            auto_inactive: (success && !self.production).then_some(true),
        };
        let posted = self.post_status(&client, deadline, &status).await;
        let posted_ok = posted.is_ok();
        self.record_status(outcome.state(), posted);
        if success && self.production && posted_ok {
            self.inactivate_older(&client, deadline).await;
        }
        self.spent += started.elapsed();
    }

    /// Marks older production deployments of this environment whose latest state is `success`
    /// as `inactive`. Newer deployments (a concurrent run's) are left alone.
    async fn inactivate_older(&mut self, client: &Octocrab, deadline: Instant) {
        let Some(ours) = self.report.deployment_id else {
            return;
        };
        let (owner, repo) = self.repository();
        let environment = self.environment.clone();
        let route = format!(
            "/repos/{owner}/{repo}/deployments?environment={}&per_page={OLDER_LOOKED_AT}",
            encode(&environment)
        );
        let listed = match call::<()>(client, deadline, Verb::Get, &route, None).await {
            Ok((200, bytes)) => parse::<Vec<DeploymentAnswer>>(&bytes),
            Ok((code, bytes)) => Err(status_error(code, &bytes)),
            Err(e) => Err(e),
        };
        let older = match listed {
            Ok(list) => list,
            Err(e) => {
                self.warn(format!(
                    "older production deployments were not marked inactive: {e}"
                ));
                return;
            }
        };
        for d in older
            .into_iter()
            .filter(|d| d.id < ours && d.production_environment != Some(false))
            .take(OLDER_LOOKED_AT)
        {
            let route = format!(
                "/repos/{owner}/{repo}/deployments/{}/statuses?per_page=100",
                d.id
            );
            let latest = match call::<()>(client, deadline, Verb::Get, &route, None).await {
                Ok((200, bytes)) => parse::<Vec<StatusAnswer>>(&bytes),
                Ok((code, bytes)) => Err(status_error(code, &bytes)),
                Err(e) => Err(e),
            };
            let latest = match latest {
                // The latest status is the highest id, whatever order the list comes in.
                Ok(list) => list.into_iter().max_by_key(|s| s.id).map(|s| s.state),
                Err(e) => {
                    self.warn(format!("deployment {} was not marked inactive: {e}", d.id));
                    if matches!(e, CallError::Timeout(_)) {
                        return; // the step's time is up: one warning, not one per deployment
                    }
                    continue;
                }
            };
            if latest.as_deref() != Some("success") {
                continue;
            }
            let status = CreateStatus {
                state: "inactive",
                log_url: self.report.log_url.as_deref(),
                description: limit(&format!("superseded by {} (deployment {ours})", self.tag)),
                environment_url: None,
                auto_inactive: None,
            };
            let route = format!("/repos/{owner}/{repo}/deployments/{}/statuses", d.id);
            match call(client, deadline, Verb::Post, &route, Some(&status)).await {
                Ok((201, _)) => self.report.inactivated.push(d.id),
                Ok((code, bytes)) => {
                    let e = status_error(code, &bytes);
                    self.warn(format!("deployment {} was not marked inactive: {e}", d.id));
                }
                Err(e) => {
                    self.warn(format!("deployment {} was not marked inactive: {e}", d.id));
                    if matches!(e, CallError::Timeout(_)) {
                        return;
                    }
                }
            }
        }
    }

    async fn post_status(
        &self,
        client: &Octocrab,
        deadline: Instant,
        status: &CreateStatus<'_>,
    ) -> Result<(), CallError> {
        let (owner, repo) = self.repository();
        let Some(id) = self.report.deployment_id else {
            return Err(CallError::Answer("no deployment".into()));
        };
        let route = format!("/repos/{owner}/{repo}/deployments/{id}/statuses");
        match call(client, deadline, Verb::Post, &route, Some(status)).await? {
            (201, bytes) => {
                let answer = parse::<StatusAnswer>(&bytes)?;
                if answer.state == status.state {
                    Ok(())
                } else {
                    Err(CallError::Answer(format!(
                        "status recorded as {:?}",
                        bounded(&answer.state)
                    )))
                }
            }
            (code, bytes) => Err(status_error(code, &bytes)),
        }
    }

    fn record_status(&mut self, state: &str, posted: Result<(), CallError>) {
        match posted {
            Ok(()) => self.report.states.push(state.to_string()),
            Err(e) => {
                let hint = e.hint();
                let id = self.report.deployment_id.unwrap_or_default();
                self.warn(format!(
                    "GitHub deployment {id}: status {state} not posted: {e}{hint}"
                ));
            }
        }
    }

    /// The client and this step's deadline, or `None` (GitHub not used, or budget spent).
    async fn step(&mut self, what: &str) -> Option<(Octocrab, Instant)> {
        let settings = self.settings.as_ref()?;
        let left = settings.budget.saturating_sub(self.spent);
        if left.is_zero() {
            let budget = settings.budget.as_secs_f32();
            self.warn(format!(
                "{what} skipped: GitHub calls already took the run's {budget}s budget"
            ));
            return None;
        }
        let deadline = Instant::now() + left.min(STEP_LIMIT);
        if self.client.is_none() {
            match build_client(settings) {
                Ok(c) => self.client = Some(c),
                Err(e) => {
                    let e = format!("GitHub client for {}: {e}", settings.api_url);
                    self.warn(e);
                    self.settings = None;
                    return None;
                }
            }
        }
        self.client.clone().map(|c| (c, deadline))
    }

    fn repository(&self) -> (String, String) {
        self.settings
            .as_ref()
            .map(|s| (s.owner.clone(), s.repo.clone()))
            .unwrap_or_default()
    }

    /// Records a warning (token scrubbed, bounded) and prints it as one line.
    fn warn(&mut self, message: String) {
        let mut message = bounded(&message);
        if let Some(s) = &self.settings {
            let token = s.token.expose();
            if token.len() >= 4 {
                message = message.replace(token, "***");
            }
        }
        tracing::warn!("github: {message}");
        self.report.warnings.push(message);
    }
}

fn short_digest(digest: &str) -> &str {
    let end = digest
        .char_indices()
        .nth("sha256:".len() + 12)
        .map_or(digest.len(), |(i, _)| i);
    &digest[..end]
}

#[cfg(test)]
#[path = "deployments_tests.rs"]
mod tests;
