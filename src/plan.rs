//! The plan: everything a run will do, computed before anything is touched.
//!
//! `ferry plan` prints it; `ferry deploy` executes it. Reading the source digest needs the
//! environment's credentials; when that fails the plan says why instead of guessing.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::aws::sts::{self, AuthMode};
use crate::config::{Environment, Environments, ServiceConfig, SmokeCheck};
use crate::error::Failure;
use crate::gate::CandidateView;
use crate::github::event::{self, Trigger, TriggerSource};
use crate::records::{RunKind, Summary};
use crate::tag::{self, Channel, ReleaseTag};

pub mod claims;
mod lineage;
mod memory;
mod set;

pub use set::SetImage;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub tag: String,
    pub version: String,
    pub channel: Channel,
    pub environment: String,
    pub config_file: String,
    pub account_id: String,
    pub region: String,
    pub role_arn: String,
    pub auth: AuthMode,
    pub trigger: TriggerSource,
    pub source: ImageRef,
    pub target: ImageRef,
    /// A release of several images: the images after the first (which is `source`/`target`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<SetImage>,
    /// Whether bytes must be copied from the source repository to the target.
    pub promote: bool,
    pub services: Vec<ServiceConfig>,
    /// What deploy would change on each service (read live; empty when it could not be read).
    pub changes: Vec<crate::deploy::preview::ServicePreview>,
    pub smoke: Vec<SmokeCheck>,
    /// Things the plan could not find out, each with its reason.
    pub unresolved: Vec<String>,
    /// Deploy, redeploy, or rollback (a release this environment ran before, older than what
    /// runs now), decided from the records.
    pub kind: RunKind,
    /// The release that runs now by the records (`rollback from <this> to <tag>`).
    pub live_release: Option<String>,
    /// Where the digest comes from.
    pub digest_from: DigestFrom,
    /// The record that vouches for the digest (this environment's own, or the source's).
    pub record: Option<Summary>,
    /// For a promotion: every release candidate of the version and its state.
    pub candidates: Vec<CandidateView>,
    /// An older release never deployed here, allowed by `--allow-downgrade`.
    pub downgrade: bool,
    /// The release candidate these bytes were verified as (a promoted image reports it).
    pub built_as: Option<String>,
    /// What the plan learned that a person should know (a moved tag it does not follow, the
    /// history a rollback to a release from before ferry rests on).
    pub notes: Vec<String>,
    /// For an environment of several targets: which one this plan is, and its wave (1 first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploys_to: Option<PlanTarget>,
    /// The plans of the other targets, in wave order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Plan>,
}

/// Which target of several a plan is for.
#[derive(Debug, Clone, Serialize)]
pub struct PlanTarget {
    pub name: String,
    /// 1 first.
    pub wave: usize,
    /// `deploy.on_failure`.
    pub on_failure: crate::config::OnFailure,
}

/// Where a plan's digest comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestFrom {
    /// The release tag in the source repository (a new pre-release).
    Tag,
    /// The source environment's record of the candidate that passed (a promotion).
    SourceRecord,
    /// This environment's own record of the release (rollback, redeploy).
    OwnRecord,
    /// The release tag in this environment's repository, run here before ferry's first
    /// record (its services' task-definition history, or what ferry's first deploy replaced).
    BeforeFerry,
    /// Not read (offline, or the records could not be read).
    Unknown,
}

/// An image location, with what it points at when that could be read.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRef {
    pub environment: String,
    pub registry: String,
    pub repository: String,
    /// `None` when it could not be decided (e.g. no rc tag could be listed).
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub media_type: Option<String>,
}

impl ImageRef {
    fn new(env: &Environment, tag: Option<String>) -> Self {
        ImageRef {
            environment: env.name.clone(),
            registry: env.registry_host(),
            repository: env.repository().to_string(),
            tag,
            digest: None,
            media_type: None,
        }
    }

    /// `registry/repository[:tag][@digest]`
    pub fn display(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// Options for planning.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Do not contact AWS or registries.
    pub offline: bool,
    /// `--from vX.Y.Z-rc.N`: promote this candidate instead of the highest.
    pub from: Option<String>,
    /// `--allow-downgrade`: deploy an older release this environment never ran.
    pub allow_downgrade: bool,
    /// `GITHUB_RUN_ATTEMPT` (1 outside Actions).
    pub run_attempt: u32,
    /// `deploy --wait-for-idle`: a deployment in flight is waited for, not refused.
    pub wait_for_idle: bool,
    /// `deploy`: the run checks other runs' claims against its own claim, so the plan does not
    /// (it would see that claim).
    pub claims_checked_by_run: bool,
    /// The run deadline: a release whose rollouts, smoke checks and rollbacks cannot fit is
    /// refused, as `deploy` refuses it.
    pub deadline: Option<crate::deadline::Deadline>,
}

/// Parses the tag against the environments and checks it against the trigger.
pub fn classify(trigger: &Trigger, envs: &Environments) -> Result<ReleaseTag> {
    let words = envs.prerelease_words();
    let tag = tag::parse(&trigger.tag, &words).map_err(|e| {
        let forms = e.accepted_forms();
        Failure::invalid(e.to_string()).hint(forms)
    })?;
    event::check_prerelease_flag(trigger, &tag)?;
    Ok(tag)
}

/// Computes the plan for `trigger`; reads digests unless `opts.offline`. An environment of
/// several targets plans each (`targets`: the ones after the first), side by side; a refusal
/// of any is the plan's.
pub async fn plan(trigger: &Trigger, envs_dir: &Path, opts: &PlanOptions) -> Result<Plan> {
    let envs = crate::config::load(envs_dir)?;
    let tag = classify(trigger, &envs)?;
    let env = envs.select(&tag)?;
    if !env.has_targets() {
        return plan_target(trigger, &envs, env, &tag, opts).await;
    }
    let plans = futures_util::future::try_join_all(
        env.targets
            .iter()
            .map(|t| plan_target(trigger, &envs, t, &tag, opts)),
    )
    .await?;
    let mut plans = plans.into_iter();
    let mut first = plans.next().ok_or_else(|| anyhow::anyhow!("no targets"))?;
    first.targets = plans.collect();
    Ok(first)
}

/// The plan of one target (an environment of one is its own target).
pub async fn plan_target(
    trigger: &Trigger,
    envs: &Environments,
    env: &Environment,
    tag: &ReleaseTag,
    opts: &PlanOptions,
) -> Result<Plan> {
    let tag = tag.clone();
    let source_env = match &env.file.promote {
        Some(p) => envs.get(&p.from)?,
        None => env,
    };
    let promote = env.file.promote.is_some();
    let source_tag = if promote { None } else { Some(tag.tag.clone()) };
    let mut plan = Plan {
        tag: tag.tag.clone(),
        version: tag.version.to_string(),
        channel: tag.channel.clone(),
        environment: env.name.clone(),
        config_file: env.path.display().to_string(),
        account_id: env.file.account_id.clone(),
        region: env.file.region.clone(),
        role_arn: env.file.role.arn.clone(),
        auth: sts::auth_mode(),
        trigger: trigger.source,
        source: ImageRef::new(source_env, source_tag),
        target: ImageRef::new(env, Some(tag.tag.clone())),
        also: Vec::new(),
        promote,
        services: env.file.services.clone(),
        changes: Vec::new(),
        smoke: env.file.smoke.clone(),
        unresolved: Vec::new(),
        kind: RunKind::Deploy,
        live_release: None,
        digest_from: DigestFrom::Unknown,
        record: None,
        candidates: Vec::new(),
        downgrade: false,
        built_as: None,
        notes: Vec::new(),
        deploys_to: env.target.as_ref().map(|t| PlanTarget {
            name: t.name.clone(),
            wave: t.wave + 1,
            on_failure: env.on_failure(),
        }),
        targets: Vec::new(),
    };
    if let Some(from) = &opts.from {
        memory::check_from(from, &tag, env, source_env)?;
    }
    // Every plan of a promoting environment (and so every production deploy) says when the
    // records it promotes on cannot be verified.
    if let Some(w) = envs.unsigned_warning(env) {
        tracing::warn!("{w}");
    }
    if opts.offline {
        plan.unresolved.push("digests not read (--offline)".into());
        plan.unresolved.push(
            "records not read (--offline): rollback, gate and overlap checks not made".into(),
        );
        return Ok(plan);
    }
    // Without credentials, or with no endpoint answering, every lookup below would fail the
    // same way: say why once (stderr), and which lookups were therefore skipped.
    if let Err(no) = sts::check_access(env).await {
        tracing::warn!("{}", no.full);
        let mut skipped = vec!["records", "source image"];
        if plan.promote {
            skipped.push("target image");
        }
        skipped.push("task definitions");
        plan.unresolved
            .push(format!("{}; not read: {}", no.short, skipped.join(", ")));
        return Ok(plan);
    }
    // A definite answer (no such image, nothing verified in staging, a refusal) fails the
    // plan; an operational error (no credentials here) only leaves the digest unknown, and
    // deploy then stops before changing anything.
    match memory::resolve(&mut plan, envs, env, source_env, &tag, opts).await {
        Err(e) if crate::error::classify(&e).is_some() => return Err(e),
        Err(e) => plan.unresolved.push(format!("records: {e:#}")),
        Ok(memory::Resolved::Done) => {}
        Ok(memory::Resolved::FromTag) => {
            match resolve_source(&mut plan, env, source_env, &tag).await {
                Err(e) if crate::error::classify(&e).is_some() => return Err(e),
                Err(e) => plan.unresolved.push(format!("source image: {e:#}")),
                Ok(()) => plan.digest_from = DigestFrom::Tag,
            }
        }
    }
    if plan.promote {
        if let Err(e) = resolve_target(&mut plan, env).await {
            plan.unresolved.push(format!("target image: {e:#}"));
        }
    } else {
        plan.target.digest.clone_from(&plan.source.digest);
        plan.target.media_type.clone_from(&plan.source.media_type);
    }
    if plan.source.digest.is_some() {
        match resolve_set(&mut plan, env, source_env).await {
            Err(e) if crate::error::classify(&e).is_some() => return Err(e),
            Err(e) => plan.unresolved.push(format!("images: {e:#}")),
            Ok(()) => {}
        }
    }
    if let Some(digest) = &plan.source.digest {
        refuse_moved_tag(&plan, digest)?;
    }
    let pins: Result<Vec<_>> = env
        .file
        .services
        .iter()
        .map(|cfg| plan.pins(env, cfg))
        .collect();
    if let (Some(digest), Ok(pins)) = (plan.source.digest.clone(), pins) {
        let tags = crate::deploy::taskdef::ferry_tags(&plan.tag, &plan.version, &digest, None);
        let preview = async {
            let sdk = sts::environment_config(env).await?;
            crate::deploy::preview::preview(&sdk, env, &pins, &tags).await
        };
        match preview.await {
            Ok(p) => plan.changes = p,
            Err(e) => plan.unresolved.push(format!("task definitions: {e:#}")),
        }
        // The same refusal `deploy` makes (deploy::prepare), so that plan predicts it.
        if let (false, Some(c)) = (
            opts.wait_for_idle,
            plan.changes.iter().find(|c| c.in_flight.is_some()),
        ) {
            return Err(Failure::refused(format!(
                "service {}/{} has a deployment in flight: {}; deploying on top of it would make its outcome unknowable",
                c.cluster,
                c.service,
                c.in_flight.as_deref().unwrap_or_default()
            ))
            .hint("wait for it to finish, or run with --wait-for-idle")
            .into());
        }
        // A service no rollout can move (the preflight's errors): refused before anything
        // changes, by `plan` as by `deploy`.
        let errors: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| !c.changes.is_empty())
            .flat_map(|c| {
                c.preflight
                    .iter()
                    .filter(|f| f.severity == crate::deploy::preflight::Severity::Error)
                    .map(move |f| {
                        format!(
                            "{}/{}: {}",
                            c.cluster,
                            c.service,
                            crate::deploy::preflight::line(f)
                        )
                    })
            })
            .collect();
        if !errors.is_empty() {
            return Err(Failure::refused(format!(
                "no rollout can succeed; nothing was changed:\n  - {}",
                errors.join("\n  - ")
            ))
            .hint("fix the service settings named above (`ferry validate --online` lists every preflight finding), then run again")
            .into());
        }
        // The run deadline, as `deploy` checks it before changing anything.
        if let Some(deadline) = opts.deadline {
            let secs = std::time::Duration::from_secs;
            let rollouts: Vec<crate::deadline::Rollout> = plan
                .changes
                .iter()
                .filter(|c| !c.changes.is_empty())
                .map(|c| {
                    (
                        format!("{}/{}", c.cluster, c.service),
                        secs(c.rollout_timeout_seconds),
                        secs(c.rollback_timeout_seconds),
                    )
                })
                .collect();
            crate::deadline::fit(deadline.remaining(), env.smoke_reserve(), &rollouts)
                .map_err(|why| crate::deadline::refusal(&deadline, &why, "nothing was changed"))?;
        }
    }
    Ok(plan)
}

/// The source image by tag, read with `env`'s role (for a promotion, through the source
/// repository's policy: the target's jobs never hold the source's role).
async fn resolve_source(
    plan: &mut Plan,
    env: &Environment,
    source_env: &Environment,
    tag: &ReleaseTag,
) -> Result<()> {
    let sdk = sts::environment_config(env).await?;
    let client = crate::promote::source_client(&sdk, source_env, env).await?;
    let repo = source_env.repository();
    if plan.source.tag.is_none() {
        let tags = client.list_tags(repo).await?;
        let words = source_env.prerelease_words();
        let best = tag::highest_prerelease(tags.iter().map(String::as_str), &tag.core(), &words).ok_or_else(|| {
            Failure::refused(format!(
                "no {} pre-release of {} (v{}-{}.N) in {}/{}: production only deploys what staging verified",
                source_env.name,
                tag.core(),
                tag.core(),
                words.first().map_or("rc", String::as_str),
                source_env.registry_host(),
                repo
            ))
            .hint(format!("release v{}-rc.N to {} first", tag.core(), source_env.name))
        })?;
        plan.source.tag = Some(best.tag);
    }
    let source_tag = plan.source.tag.clone().unwrap_or_default();
    let desc = client.resolve_tag(repo, &source_tag).await?.ok_or_else(|| {
        Failure::invalid(format!(
            "no image tagged {source_tag} in {}/{repo}",
            source_env.registry_host()
        ))
        .hint("push the image under the release tag before publishing the release (CI builds it on the tag)")
    })?;
    plan.source.digest = Some(desc.digest);
    plan.source.media_type = Some(desc.media_type);
    Ok(())
}

async fn resolve_target(plan: &mut Plan, env: &Environment) -> Result<()> {
    let sdk = sts::environment_config(env).await?;
    let client = crate::registry::ecr::ecr_client(&sdk, &env.registry_host()).await?;
    if let Some(desc) = client.resolve_tag(env.repository(), &plan.tag).await? {
        plan.target.digest = Some(desc.digest);
        plan.target.media_type = Some(desc.media_type);
    }
    Ok(())
}

/// The images of the release after the first (`set`), read with `env`'s identity.
async fn resolve_set(plan: &mut Plan, env: &Environment, source_env: &Environment) -> Result<()> {
    if env.images.len() < 2 {
        return Ok(());
    }
    let sdk = sts::environment_config(env).await?;
    let own = crate::registry::ecr::ecr_client(&sdk, &env.registry_host()).await?;
    let source = if plan.promote {
        crate::promote::source_client(&sdk, source_env, env).await?
    } else {
        own.clone()
    };
    let readers = set::Readers {
        source_env,
        source: &source,
        own: &own,
    };
    set::resolve(plan, env, &readers).await
}

/// A release tag is immutable: production's tag must not already mean other bytes.
pub fn refuse_moved_tag(plan: &Plan, digest: &str) -> Result<()> {
    for s in &plan.also {
        if let (true, Some(existing), Some(want)) =
            (plan.promote, &s.target.digest, &s.source.digest)
        {
            if existing != want {
                return Err(Failure::refused(format!(
                    "{}/{}:{} (image {}) already exists with digest {existing}, but the verified {} candidate is {want}; refusing to move the tag",
                    s.target.registry,
                    s.target.repository,
                    plan.tag,
                    s.name,
                    plan.source.tag.as_deref().unwrap_or("?")
                ))
                .hint("a released version never changes: publish a new version (and release candidate) instead")
                .into());
            }
        }
    }
    if let (true, Some(existing)) = (plan.promote, &plan.target.digest) {
        if existing != digest {
            return Err(Failure::refused(format!(
                "{}/{}:{} already exists with digest {existing}, but the verified {} candidate is {digest}; refusing to move the tag",
                plan.target.registry,
                plan.target.repository,
                plan.tag,
                plan.source.tag.as_deref().unwrap_or("?")
            ))
            .hint("a released version never changes: publish a new version (and release candidate) instead")
            .into());
        }
    }
    Ok(())
}
