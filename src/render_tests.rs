//! Every human text and every `--output json` shape, whole, as snapshots
//! (`src/snapshots/`): a change to wording or to a JSON field shows up in review.
//! Update them with `cargo insta review` (or `INSTA_UPDATE=always cargo test`) and read the diff.

use super::*;
use crate::aws::sts::AuthMode;
use crate::config::{ServiceConfig, SmokeCheck};
use crate::deploy::preview::ServicePreview;
use crate::deploy::taskdef::FieldChange;
use crate::deploy::ServiceState;
use crate::gate::{CandidateState, CandidateView};
use crate::github::event::TriggerSource;
use crate::plan::{DigestFrom, ImageRef, Plan};
use crate::records::store::Written;
use crate::records::{RecordResult, RunKind, Summary};
use crate::registry::referrers::ReferrersPath;
use crate::report::{DeployReport, EnvironmentStatus, Outcome, ServiceReport, ServiceStatus};
use crate::smoke::SmokeResult;

/// `ferry status` and `ferry validate` in words and JSON.
#[path = "render_status_tests.rs"]
mod status;

/// The step summary's timeline, names and digests: the cases the browser check reads.
#[path = "render_summary_tests.rs"]
mod summary;

/// A release of several images, and a release to several targets in waves.
#[path = "render_sets_tests.rs"]
mod sets;

const STAGING_DIGEST: &str =
    "sha256:0b1c2d3e4f5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn summary(
    env: &str,
    tag: &str,
    digest: &str,
    result: RecordResult,
    kind: RunKind,
    ended: u64,
) -> Summary {
    Summary {
        images: Default::default(),
        environment: env.into(),
        tag: tag.into(),
        digest: digest.into(),
        result,
        kind,
        run: format!("{ended}000-0a1b2c3d"),
        started_at: ended - 240,
        ended_at: ended,
        record: format!("sha256:{ended:064}"),
        trust: crate::records::sign::Trust::Unchecked,
    }
}

const DIGEST: &str = "sha256:4f0e5c1d2b3a49586776655443322110ffeeddccbbaa99887766554433221100";
const TD: &str = "arn:aws:ecs:eu-west-1:222222222222:task-definition/shop-api";

fn image(env: &str, account: &str, tag: &str, digest: Option<&str>) -> ImageRef {
    ImageRef {
        environment: env.into(),
        registry: format!("{account}.dkr.ecr.eu-west-1.amazonaws.com"),
        repository: "shop/api".into(),
        tag: Some(tag.into()),
        digest: digest.map(str::to_string),
        media_type: digest.map(|_| "application/vnd.oci.image.index.v1+json".into()),
    }
}

fn production_plan(with_changes: bool) -> Plan {
    Plan {
        also: Vec::new(),
        deploys_to: None,
        targets: Vec::new(),
        tag: "v1.4.0".into(),
        version: "1.4.0".into(),
        channel: crate::tag::Channel::Final,
        environment: "production".into(),
        config_file: "environments/production.toml".into(),
        account_id: "222222222222".into(),
        region: "eu-west-1".into(),
        role_arn: "arn:aws:iam::222222222222:role/ferry-deploy".into(),
        auth: AuthMode::GithubOidc,
        trigger: TriggerSource::Release,
        source: image("staging", "111111111111", "v1.4.0-rc.3", Some(DIGEST)),
        target: image("production", "222222222222", "v1.4.0", None),
        promote: true,
        services: vec![ServiceConfig {
            image: None,
            containers: Default::default(),
            cluster: "shop".into(),
            service: "api".into(),
            container: "api".into(),
            codedeploy: None,
        }],
        changes: if with_changes {
            vec![ServicePreview {
                preflight: vec![crate::deploy::preflight::Finding {
                    severity: crate::deploy::preflight::Severity::Warning,
                    setting: "containerDefinitions.logConfiguration".into(),
                    problem: "the deployed container has no log configuration".into(),
                    fix: "add a logConfiguration (e.g. awslogs) to the container".into(),
                }],
                cluster: "shop".into(),
                service: "api".into(),
                current_task_definition: format!("{TD}:41"),
                current_release: Some("v1.3.2".into()),
                changes: vec![FieldChange {
                    field: "containerDefinitions[api].image".into(),
                    from: Some(format!(
                        "222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api@sha256:{}",
                        "9".repeat(64)
                    )),
                    to: Some(format!(
                        "222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api@{DIGEST}"
                    )),
                }],
                in_flight: None,
                rollout_timeout_seconds: 720,
                rollback_timeout_seconds: 720,
                strategy: Default::default(),
            }]
        } else {
            Vec::new()
        },
        smoke: vec![SmokeCheck {
            name: None,
            url: "https://shop.example.com/healthz".into(),
            expect_status: 200,
            version_field: Some("version".into()),
            deadline_seconds: 120,
            timeout_seconds: 5,
            follow_redirects: false,
            consecutive: 3,
            test_url: None,
            service: None,
        }],
        unresolved: Vec::new(),
        kind: RunKind::Deploy,
        live_release: Some("v1.3.0".into()),
        digest_from: DigestFrom::SourceRecord,
        record: Some(summary(
            "staging",
            "v1.4.0-rc.3",
            DIGEST,
            RecordResult::Succeeded,
            RunKind::Deploy,
            1_795_000_000,
        )),
        candidates: vec![
            CandidateView {
                tag: "v1.4.0-rc.2".into(),
                state: CandidateState::Failed {
                    result: RecordResult::RolledBack,
                },
                digest: Some(STAGING_DIGEST.into()),
            },
            CandidateView {
                tag: "v1.4.0-rc.3".into(),
                state: CandidateState::Passed,
                digest: Some(DIGEST.into()),
            },
        ],
        downgrade: false,
        built_as: Some("v1.4.0-rc.3".into()),
        notes: Vec::new(),
    }
}

fn rollback_plan() -> Plan {
    let mut p = production_plan(false);
    p.tag = "v1.3.0".into();
    p.version = "1.3.0".into();
    p.kind = RunKind::Rollback;
    p.live_release = Some("v1.4.0".into());
    p.digest_from = DigestFrom::OwnRecord;
    p.promote = false;
    p.source = image("production", "222222222222", "v1.3.0", Some(DIGEST));
    p.target = p.source.clone();
    p.record = Some(summary(
        "production",
        "v1.3.0",
        DIGEST,
        RecordResult::Succeeded,
        RunKind::Deploy,
        1_794_000_000,
    ));
    p.candidates = Vec::new();
    p
}

#[test]
fn rollback_report_markdown() {
    let mut r = report(Outcome::Deployed, ServiceState::Deployed, &[]);
    r.tag = "v1.3.0".into();
    r.kind = RunKind::Rollback;
    r.rollback_from = Some("v1.4.0".into());
    insta::assert_snapshot!(crate::render::report_markdown(&r));
}

#[test]
fn rollback_plan_text_and_json() {
    insta::assert_snapshot!(plan_text(&rollback_plan()));
    let v = serde_json::to_value(rollback_plan()).unwrap();
    insta::assert_json_snapshot!((
        &v["kind"],
        &v["live_release"],
        &v["digest_from"],
        &v["record"]
    ));
}

/// A rollback to a release production ran before ferry's first record (an adopted service).
#[test]
fn before_ferry_rollback_plan_text() {
    let mut p = rollback_plan();
    p.tag = "v1.2.0".into();
    p.version = "1.2.0".into();
    p.digest_from = DigestFrom::BeforeFerry;
    p.record = None;
    p.built_as = None;
    p.source = image("production", "222222222222", "v1.2.0", Some(DIGEST));
    p.target = p.source.clone();
    p.notes = vec![
        "production ran v1.2.0 before ferry's first record here: shop-production/api ran it as shop-api:7 (222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.2.0), by its task-definition history".into(),
    ];
    insta::assert_snapshot!(plan_text(&p));
}

fn staging_plan_offline() -> Plan {
    Plan {
        also: Vec::new(),
        deploys_to: None,
        targets: Vec::new(),
        tag: "v1.4.0-rc.3".into(),
        version: "1.4.0-rc.3".into(),
        channel: crate::tag::Channel::Prerelease {
            word: "rc".into(),
            number: 3,
        },
        environment: "staging".into(),
        config_file: "environments/staging.toml".into(),
        account_id: "111111111111".into(),
        region: "eu-west-1".into(),
        role_arn: "arn:aws:iam::111111111111:role/ferry-deploy".into(),
        auth: AuthMode::AssumeRole,
        trigger: TriggerSource::Cli,
        source: image("staging", "111111111111", "v1.4.0-rc.3", None),
        target: image("staging", "111111111111", "v1.4.0-rc.3", None),
        promote: false,
        services: vec![ServiceConfig {
            image: None,
            containers: Default::default(),
            cluster: "shop-staging".into(),
            service: "api".into(),
            container: "api".into(),
            codedeploy: None,
        }],
        changes: Vec::new(),
        smoke: Vec::new(),
        unresolved: vec!["digests not read (--offline)".into()],
        kind: RunKind::Deploy,
        live_release: None,
        digest_from: DigestFrom::Unknown,
        record: None,
        candidates: Vec::new(),
        downgrade: false,
        built_as: None,
        notes: Vec::new(),
    }
}

fn service(state: ServiceState, evidence: &[&str]) -> ServiceReport {
    let (new, fin) = match state {
        ServiceState::Deployed => (Some(format!("{TD}:42")), Some(format!("{TD}:42"))),
        ServiceState::AlreadyDeployed => (None, Some(format!("{TD}:42"))),
        ServiceState::Unknown => (Some(format!("{TD}:42")), None),
        _ => (Some(format!("{TD}:42")), Some(format!("{TD}:41"))),
    };
    ServiceReport {
        cluster: "shop".into(),
        service: "api".into(),
        previous_task_definition: format!("{TD}:41"),
        detail: service_detail(state, &format!("{TD}:41"), new.as_deref(), Some("v1.3.2")),
        task_definition: new,
        final_task_definition: fin,
        previous_release: Some("v1.3.2".into()),
        previous_image: Some("222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api:v1.3.2".into()),
        changes: Vec::new(),
        state,
        evidence: evidence.iter().map(|s| s.to_string()).collect(),
        rollout_seconds: 42.5,
        phases: Vec::new(),
        rollback_seconds: None,
        rollout_noticed_at: Some(1_790_000_000.0),
        timeout_seconds: 720,
        timeout_why:
            "1 batch(es) of up to 2 task(s) × (120s start + 90s health) + 300s drain + 0s bake"
                .into(),
    }
}

fn report(outcome: Outcome, state: ServiceState, evidence: &[&str]) -> DeployReport {
    let mut r = DeployReport {
        targets: Vec::new(),
        promotion_seconds: None,
        images: Default::default(),
        tag: "v1.4.0".into(),
        version: "1.4.0".into(),
        environment: "production".into(),
        region: "eu-west-1".into(),
        run_url: Some("https://github.com/acme/shop/actions/runs/42".into()),
        image: format!("222222222222.dkr.ecr.eu-west-1.amazonaws.com/shop/api@{DIGEST}"),
        promotion: Some(CopyOutcome {
            digest: DIGEST.into(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            manifests: 3,
            manifests_pushed: 3,
            blobs: 7,
            blobs_copied: 5,
            blobs_skipped: 2,
            bytes_copied: 52_428_800,
            bytes_total: 62_914_560,
            requests: 31,
            seconds: 4.25,
            ..Default::default()
        }),
        services: vec![service(state, evidence)],
        smoke: vec![SmokeResult {
            name: "https://shop.example.com/healthz".into(),
            url: "https://shop.example.com/healthz".into(),
            ok: outcome != Outcome::RolledBack,
            attempts: 2,
            detail: if outcome == Outcome::RolledBack {
                "status 500, expected 200".into()
            } else {
                "status 200, version = 1.4.0-rc.3".into()
            },
            seconds: 1.5,
        }],
        outcome,
        kind: RunKind::Deploy,
        rollback_from: None,
        record: Some(Written {
            digest: format!("sha256:{:064}", 7),
            tag: "ferry-record_production_v1.4.0_20261123T101500Z_0a1b2c3d".into(),
            referrers: ReferrersPath::Api,
        }),
        record_error: None,
        verdict: String::new(),
        github: None,
    };
    r.verdict = match outcome {
        Outcome::Deployed | Outcome::AlreadyDeployed => success_verdict(&r, DIGEST),
        Outcome::RolledBack => failure_verdict(
            &r,
            &["smoke check https://shop.example.com/healthz failed after 2 attempt(s): status 500, expected 200".into()],
            true,
        ),
        Outcome::NeedsAttention => failure_verdict(
            &r,
            &["shop/api: ECS rolled the deployment back (circuit breaker: 3 failed task(s), threshold 3); the automatic rollback FAILED too".into()],
            false,
        ),
    };
    r
}

#[test]
fn plan_text_production() {
    insta::assert_snapshot!(plan_text(&production_plan(true)));
}

#[test]
fn plan_text_production_before_any_read() {
    insta::assert_snapshot!(plan_text(&production_plan(false)));
}

#[test]
fn plan_text_staging_offline() {
    insta::assert_snapshot!(plan_text(&staging_plan_offline()));
}

#[test]
fn plan_markdown_wraps_the_text() {
    insta::assert_snapshot!(plan_markdown(&staging_plan_offline()));
}

#[test]
fn plan_json() {
    insta::assert_json_snapshot!(production_plan(true));
}

#[test]
fn report_text_deployed() {
    insta::assert_snapshot!(report_text(&report(
        Outcome::Deployed,
        ServiceState::Deployed,
        &[]
    )));
}

#[test]
fn report_text_already_deployed() {
    let mut r = report(Outcome::AlreadyDeployed, ServiceState::AlreadyDeployed, &[]);
    if let Some(p) = r.promotion.as_mut() {
        p.already_done = true;
    }
    insta::assert_snapshot!(report_text(&r));
}

#[test]
fn report_text_rolled_back() {
    insta::assert_snapshot!(report_text(&report(
        Outcome::RolledBack,
        ServiceState::RolledBack,
        &["event: (service api) has reached a steady state."]
    )));
}

#[test]
fn report_text_needs_attention() {
    insta::assert_snapshot!(report_text(&report(
        Outcome::NeedsAttention,
        ServiceState::Unknown,
        &[
            "event: (service api) (deployment ecs-svc/1) deployment failed: tasks failed to start.",
            "stopped task: Essential container in task exited (EssentialContainerExited); container api exit 1",
        ]
    )));
}

#[test]
fn report_markdown() {
    insta::assert_snapshot!(super::report_markdown(&report(
        Outcome::RolledBack,
        ServiceState::RolledBack,
        &[]
    )));
}

/// A run that recorded a GitHub deployment links to the repository's deployments page beside
/// the run log; one that did not (no token) has no such link.
#[test]
fn report_markdown_links_the_github_deployments_page() {
    let mut r = report(Outcome::Deployed, ServiceState::Deployed, &[]);
    r.run_url = Some("https://github.com/acme/shop/actions/runs/7".into());
    let page = "https://github.com/acme/shop/deployments";
    r.github = Some(crate::github::deployments::GithubReport {
        deployment_id: Some(1004),
        page_url: Some(page.into()),
        ..Default::default()
    });
    let md = super::report_markdown(&r);
    assert!(
        md.ends_with(&format!(
            "[Run log](https://github.com/acme/shop/actions/runs/7) · [GitHub deployments]({page})\n"
        )),
        "{md}"
    );
    r.github = Some(crate::github::deployments::GithubReport {
        skipped: Some("GITHUB_TOKEN is not set".into()),
        page_url: Some(page.into()),
        ..Default::default()
    });
    assert!(!super::report_markdown(&r).contains("GitHub deployments"));
}

#[test]
fn report_json() {
    insta::assert_json_snapshot!(report(
        Outcome::RolledBack,
        ServiceState::RolledBack,
        &["stopped task: Task failed container health checks"]
    ));
}

#[test]
fn copy_text_and_json() {
    let out = report(Outcome::Deployed, ServiceState::Deployed, &[])
        .promotion
        .unwrap_or_default();
    insta::assert_snapshot!(copy_text("a.example/app:v1", "b.example/app:v1", &out));
    let noop = CopyOutcome {
        already_done: true,
        requests: 2,
        ..out.clone()
    };
    insta::assert_snapshot!(
        "copy_text_noop",
        copy_text("a.example/app:v1", "b.example/app:v1", &noop)
    );
    insta::assert_json_snapshot!(out);
}

#[test]
fn every_service_state_has_words_and_a_detail() {
    for s in [
        ServiceState::AlreadyDeployed,
        ServiceState::Deployed,
        ServiceState::Failed,
        ServiceState::RolledBack,
        ServiceState::Unchanged,
        ServiceState::Superseded,
        ServiceState::Unknown,
    ] {
        assert!(!state_words(s).is_empty());
        assert!(!service_detail(s, "td/web:1", Some("td/web:2"), None).is_empty());
    }
}

#[test]
fn digests_are_short_except_where_stated_whole() {
    let d = DIGEST;
    assert_eq!(short_digest(d), "sha256:4f0e5c1d…");
    assert_eq!(short_digest("sha256:abc"), "sha256:abc");
    let text = format!("  image    r/app@{d}\n  digest   {d}\n  verdict  runs {d}.\n");
    assert_eq!(
        shorten_digests(&text, Some(d)),
        format!("  image    r/app@sha256:4f0e5c1d…\n  digest   {d}\n  verdict  runs sha256:4f0e5c1d….\n")
    );
}

#[test]
fn plan_says_which_strategy_runs_and_what_it_waits_for() {
    use crate::deploy::bluegreen::{Routing, Strategy};
    let mut plan = production_plan(true);
    plan.changes[0].strategy = Strategy::CodeDeploy {
        application: "shop".into(),
        deployment_group: "api".into(),
        config: "CodeDeployDefault.ECSCanary10Percent5Minutes".into(),
        routing: Routing::Canary {
            percent: 10,
            minutes: 5,
        },
        holds: true,
        test_checks: 1,
        termination_wait_minutes: 60,
    };
    insta::assert_snapshot!("plan_text_codedeploy_canary", plan_text(&plan));
    plan.changes[0].strategy = Strategy::Native {
        strategy: "BLUE_GREEN".into(),
        routing: Routing::AllAtOnce,
        bake_minutes: 10,
        test_checks: 1,
        pauses: vec!["POST_TEST_TRAFFIC_SHIFT".into()],
    };
    insta::assert_snapshot!("plan_text_ecs_blue_green", plan_text(&plan));
    let json = serde_json::to_value(&plan.changes[0]).unwrap();
    assert_eq!(json["strategy"]["kind"], "native");
    assert_eq!(json["strategy"]["routing"]["kind"], "all-at-once");
}
