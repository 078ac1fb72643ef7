//! Tests of the run's deployment and its statuses against `tests/github_api/github_api.py`, a
//! GitHub REST API double that checks every request against GitHub's published description of
//! the operations used (`tests/github_api/rest-api-subset.json`) and answers with the
//! documented shapes (see `test_support.rs`): creating, progressing and finishing a deployment,
//! retiring older production ones, GitHub failing or slow, the token kept out of the output.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::github::event::{from_tag, Resolved};
use crate::github::test_support::{
    dispatch, posted_statuses, session, session_with, tag, vars, Double, DIGEST, LOG_URL, TOKEN,
};

#[tokio::test]
async fn staging_run_is_a_non_production_deployment_in_progress_then_success() {
    let gh = Double::start("");
    gh.release("v1.4.0-rc.1", false, true).await;
    let older = gh
        .earlier("v1.3.0-rc.1", "staging", false, &["success"])
        .await;
    let mut s = session(&gh.api_url);
    s.start(&DeploymentRequest::new(
        &tag("v1.4.0-rc.1"),
        "staging",
        DIGEST,
    ))
    .await;
    s.finish(Outcome::Success, "v1.4.0-rc.1 is live in staging")
        .await;
    gh.assert_clean().await;

    let report = s.report().clone();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.states, ["in_progress", "success"]);
    assert_eq!(report.log_url.as_deref(), Some(LOG_URL));
    let id = report.deployment_id.unwrap();
    assert!(report
        .deployment_url
        .unwrap()
        .ends_with(&format!("/deployments/{id}")));

    let requests = gh.requests().await;
    let create = &requests[0];
    assert_eq!(create["method"], "POST");
    assert_eq!(create["path"], "/repos/acme/shop/deployments");
    let body = &create["body"];
    assert_eq!(body["ref"], "v1.4.0-rc.1");
    assert_eq!(body["environment"], "staging");
    assert_eq!(body["auto_merge"], false);
    assert_eq!(body["required_contexts"], json!([]));
    assert_eq!(body["production_environment"], false);
    assert_eq!(body["transient_environment"], false);
    assert_eq!(body["payload"]["digest"], DIGEST);
    assert_eq!(body["payload"]["version"], "1.4.0-rc.1");
    assert_eq!(body["payload"]["tag"], "v1.4.0-rc.1");

    let statuses = posted_statuses(&requests, id);
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0]["state"], "in_progress");
    assert_eq!(statuses[1]["state"], "success");
    for st in &statuses {
        assert_eq!(st["log_url"], LOG_URL);
    }
    // Staging: GitHub's own auto_inactive retires the older success; ferry lists nothing.
    assert_eq!(statuses[1]["auto_inactive"], true);
    assert!(
        requests.iter().all(|r| r["method"] == "POST"),
        "{requests:#?}"
    );
    assert!(report.inactivated.is_empty());
    let latest = gh.latest_states().await;
    assert_eq!(latest[&older], "inactive");
    assert_eq!(latest[&id], "success");
    assert_eq!(requests.len(), 3);
}

#[tokio::test]
async fn production_success_marks_older_production_deployments_inactive() {
    let gh = Double::start("");
    gh.release("v1.4.0", false, false).await;
    let live = gh
        .earlier("v1.3.0", "production", true, &["in_progress", "success"])
        .await;
    let failed = gh
        .earlier("v1.3.1", "production", true, &["in_progress", "failure"])
        .await;
    let retired = gh
        .earlier("v1.2.0", "production", true, &["success", "inactive"])
        .await;
    let staging = gh
        .earlier("v1.4.0-rc.1", "staging", false, &["success"])
        .await;
    let other_env = gh
        .earlier("v1.3.0", "production-eu", true, &["success"])
        .await;

    let mut s = session(&gh.api_url);
    s.start(&DeploymentRequest::new(
        &tag("v1.4.0"),
        "production",
        DIGEST,
    ))
    .await;
    // A concurrent, newer run's deployment: not ours to retire.
    let newer = gh.earlier("v1.4.1", "production", true, &["success"]).await;
    s.finish(Outcome::Success, "v1.4.0 is live in production")
        .await;
    gh.assert_clean().await;

    let report = s.report().clone();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let ours = report.deployment_id.unwrap();
    assert_eq!(report.inactivated, [live]);
    let requests = gh.requests().await;
    assert_eq!(requests[0]["body"]["production_environment"], true);
    let final_status = &posted_statuses(&requests, ours)[1];
    assert_eq!(final_status["state"], "success");
    assert!(final_status.get("auto_inactive").is_none() || final_status["auto_inactive"].is_null());
    let inactive = &posted_statuses(&requests, live)[0];
    assert_eq!(inactive["state"], "inactive");
    assert_eq!(inactive["log_url"], LOG_URL);
    let list = requests
        .iter()
        .find(|r| r["method"] == "GET" && r["path"] == "/repos/acme/shop/deployments")
        .unwrap();
    assert_eq!(list["query"]["environment"], json!(["production"]));

    let latest = gh.latest_states().await;
    assert_eq!(latest[&live], "inactive");
    assert_eq!(latest[&failed], "failure");
    assert_eq!(latest[&retired], "inactive");
    assert_eq!(latest[&staging], "success");
    assert_eq!(latest[&other_env], "success");
    assert_eq!(latest[&newer], "success");
    assert_eq!(latest[&ours], "success");
}

#[tokio::test]
async fn a_failed_run_posts_failure_with_the_log_url_and_retires_nothing() {
    let gh = Double::start("");
    gh.release("v2.0.0", false, false).await;
    let live = gh.earlier("v1.9.0", "production", true, &["success"]).await;
    let mut s = session(&gh.api_url);
    s.start(&DeploymentRequest::new(
        &tag("v2.0.0"),
        "production",
        DIGEST,
    ))
    .await;
    s.progress("smoke failed; rolling back to v1.9.0").await;
    let result: Result<()> =
        Err(Failure::rolled_back("smoke failed; rolled back to v1.9.0").into());
    s.finish(
        Outcome::from_result(&result),
        "smoke failed; rolled back to v1.9.0",
    )
    .await;
    gh.assert_clean().await;

    let report = s.report().clone();
    assert_eq!(report.states, ["in_progress", "in_progress", "failure"]);
    let requests = gh.requests().await;
    let statuses = posted_statuses(&requests, report.deployment_id.unwrap());
    assert_eq!(statuses[1]["state"], "in_progress");
    assert_eq!(
        statuses[1]["description"],
        "smoke failed; rolling back to v1.9.0"
    );
    assert_eq!(statuses[2]["state"], "failure");
    assert_eq!(statuses[2]["log_url"], LOG_URL);
    assert_eq!(
        statuses[2]["description"],
        "smoke failed; rolled back to v1.9.0"
    );
    assert!(requests.iter().all(|r| r["method"] == "POST"));
    assert_eq!(gh.latest_states().await[&live], "success");

    // Not known to be good: `error`.
    let mut s = session(&gh.api_url);
    s.start(&DeploymentRequest::new(
        &tag("v2.0.0"),
        "production",
        DIGEST,
    ))
    .await;
    let result: Result<()> = Err(Failure::needs_attention("rollback did not settle").into());
    s.finish(Outcome::from_result(&result), "rollback did not settle")
        .await;
    assert_eq!(s.report().states, ["in_progress", "error"]);
    gh.assert_clean().await;
}

#[tokio::test]
async fn github_answering_500_is_reported_not_fatal() {
    let gh = Double::start("");
    gh.release("v1.0.0-rc.1", false, true).await;
    gh.fault(json!({"status": 500})).await;
    let mut s = session(&gh.api_url);
    s.start(&DeploymentRequest::new(
        &tag("v1.0.0-rc.1"),
        "staging",
        DIGEST,
    ))
    .await;
    s.finish(Outcome::Success, "live").await;
    let report = s.report();
    assert_eq!(report.deployment_id, None);
    assert!(report.states.is_empty());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("HTTP 500"),
        "{:?}",
        report.warnings
    );
    gh.assert_clean().await;

    // GitHub fails only when the run ends: the deployment stays, the warning says so.
    gh.fault(json!({"status": 502, "match": "/statuses"})).await;
    let mut s = session(&gh.api_url);
    s.start(&DeploymentRequest::new(
        &tag("v1.0.0-rc.1"),
        "staging",
        DIGEST,
    ))
    .await;
    s.finish(Outcome::Success, "live").await;
    let report = s.report();
    assert!(report.deployment_id.is_some());
    assert!(report.states.is_empty());
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[1].contains("status success not posted: GitHub answered HTTP 502"));
}

#[tokio::test]
async fn github_timing_out_costs_the_budget_and_no_more() {
    let gh = Double::start("");
    gh.release("v1.0.0", false, false).await;
    gh.fault(json!({"delay": 10})).await;
    let mut vars = vars(&gh.api_url);
    vars.insert("GITHUB_RUN_ATTEMPT", "1".into());
    let mut s = session_with(vars, Some(Duration::from_millis(1500)));
    let mut trigger = match from_tag("v1.0.0") {
        Resolved::Deploy(t) => t,
        Resolved::Nothing(m) => panic!("{m}"),
    };
    trigger.source = TriggerSource::WorkflowDispatch;
    let started = std::time::Instant::now();
    s.check_dispatch_release(&mut trigger, &tag("v1.0.0"))
        .await
        .unwrap();
    s.start(&DeploymentRequest::new(
        &tag("v1.0.0"),
        "production",
        DIGEST,
    ))
    .await;
    s.finish(Outcome::Success, "live").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let report = s.report();
    assert_eq!(report.deployment_id, None);
    assert_eq!(trigger.release_prerelease, None);
    assert!(
        report.warnings[0].contains("did not answer"),
        "{:?}",
        report.warnings
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("did not answer") || w.contains("budget")),
        "{:?}",
        report.warnings
    );
    assert_eq!(
        report.log_url.as_deref(),
        Some("https://github.com/acme/shop/actions/runs/7001/attempts/1")
    );
}

#[tokio::test]
async fn github_unreachable_is_reported_not_fatal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // bound, then closed: nothing listens there
    let mut s = session(&format!("http://127.0.0.1:{port}"));
    s.start(&DeploymentRequest::new(
        &tag("v1.0.0"),
        "production",
        DIGEST,
    ))
    .await;
    s.finish(Outcome::Success, "live").await;
    let report = s.report();
    assert_eq!(report.deployment_id, None);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("cannot reach GitHub"),
        "{:?}",
        report.warnings
    );
}

/// Everything logged (debug and up, any target, any thread) by this test binary. A process-wide
/// subscriber: a scoped one misses events when tests run in parallel (callsite interest cache).
fn captured_logs() -> String {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .try_init()
            .expect("no other global subscriber in the lib tests");
        buf
    });
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn the_token_never_appears_in_output() {
    captured_logs(); // start capturing
    let gh = Double::start("");
    // 422: the tag is unknown to GitHub (no release, no tag).
    let mut s = session(&gh.api_url);
    s.start(&DeploymentRequest::new(
        &tag("v9.0.0"),
        "production",
        DIGEST,
    ))
    .await;
    gh.fault(json!({"status": 500})).await;
    let mut trigger = dispatch("v9.0.0");
    s.check_dispatch_release(&mut trigger, &tag("v9.0.0"))
        .await
        .unwrap();
    let report = s.report().clone();
    assert!(
        report.warnings[0].contains("HTTP 422: No ref found for: v9.0.0"),
        "{report:?}"
    );
    let everything = format!(
        "{}\n{report:?}\n{:?}",
        serde_json::to_string(&report).unwrap(),
        Settings::from_vars(|k| vars(&gh.api_url).get(k).cloned(), None).unwrap()
    );
    assert!(!everything.contains(TOKEN), "{everything}");
    let printed = captured_logs();
    assert!(
        printed.contains("github: no GitHub deployment for v9.0.0"),
        "{printed}"
    );
    assert!(!printed.contains(TOKEN), "{printed}");
    // It was sent, though, on every request.
    let requests = gh.requests().await;
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r["authorization_ok"] == true));

    // A message that echoes the token is scrubbed before it is printed or reported.
    let mut s = session(&gh.api_url);
    s.warn(format!("GitHub said: bad credentials {TOKEN}"));
    assert_eq!(s.report().warnings[0], "GitHub said: bad credentials ***");
    let printed = captured_logs();
    assert!(printed.contains("bad credentials ***"), "{printed}");
    assert!(!printed.contains(TOKEN), "{printed}");
}

/// A release in waves names its targets, wave by wave, in the description (bounded too).
#[test]
fn a_description_names_the_targets_wave_by_wave() {
    let mut req = DeploymentRequest::new(&tag("v1.4.0"), "production", DIGEST);
    assert_eq!(
        req.description(),
        "ferry: v1.4.0 (sha256:4f1c0a6d1e2b) to production"
    );
    req.waves = vec![
        vec!["us-east-1".into()],
        vec!["eu-west-1".into(), "ap-southeast-2".into()],
    ];
    assert_eq!(
        req.description(),
        "ferry: v1.4.0 (sha256:4f1c0a6d1e2b) to production in us-east-1, then eu-west-1 + ap-southeast-2"
    );
    req.waves = vec![(0..30).map(|i| format!("target-{i}")).collect()];
    assert_eq!(req.description().chars().count(), 140);
}

#[test]
fn descriptions_and_untrusted_text_are_bounded() {
    let long = "é".repeat(200);
    let l = limit(&long);
    assert_eq!(l.chars().count(), 140);
    assert!(l.ends_with('…'));
    assert_eq!(limit("short"), "short");
    assert_eq!(bounded("a\nb\r\u{1b}[31mc"), "a b  [31mc");
    assert_eq!(bounded(&"x".repeat(1000)).chars().count(), 301);
    assert_eq!(short_digest(DIGEST), "sha256:4f1c0a6d1e2b");
    assert_eq!(short_digest("odd"), "odd");
    assert_eq!(encode("prod eu/1"), "prod+eu%2F1");
    assert_eq!(
        Outcome::from_result(&Ok::<_, anyhow::Error>(())),
        Outcome::Success
    );
    assert_eq!(
        Outcome::from_result::<()>(&Err(anyhow::anyhow!("x"))),
        Outcome::Error
    );
}

#[test]
fn the_report_json_shape() {
    let skipped = Session::new(Err("GITHUB_TOKEN is not set".into()));
    assert_eq!(
        serde_json::to_value(skipped.report()).unwrap(),
        json!({"skipped": "GITHUB_TOKEN is not set", "states": [], "warnings": []})
    );
    let report = GithubReport {
        skipped: None,
        deployment_id: Some(1004),
        deployment_url: Some("https://api.github.com/repos/acme/shop/deployments/1004".into()),
        states: vec!["in_progress".into(), "success".into()],
        inactivated: vec![1002],
        log_url: Some(LOG_URL.into()),
        page_url: None,
        release_url: None,
        warnings: vec![],
    };
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        json!({
            "deployment_id": 1004,
            "deployment_url": "https://api.github.com/repos/acme/shop/deployments/1004",
            "states": ["in_progress", "success"],
            "inactivated": [1002],
            "log_url": LOG_URL,
            "warnings": []
        })
    );
}

#[tokio::test]
async fn time_running_out_while_retiring_older_deployments_is_one_warning() {
    let gh = Double::start("");
    gh.release("v1.5.0", false, false).await;
    for t in ["v1.2.0", "v1.3.0", "v1.4.0"] {
        gh.earlier(t, "production", true, &["success"]).await;
    }
    gh.fault(json!({"delay": 5, "match": "GET /repos/acme/shop/deployments/"}))
        .await;
    let mut s = session_with(vars(&gh.api_url), Some(Duration::from_secs(2)));
    let started = std::time::Instant::now();
    s.start(&DeploymentRequest::new(
        &tag("v1.5.0"),
        "production",
        DIGEST,
    ))
    .await;
    s.finish(Outcome::Success, "live").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let report = s.report();
    assert_eq!(report.states, ["in_progress", "success"]);
    assert!(report.inactivated.is_empty());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("did not answer"),
        "{:?}",
        report.warnings
    );
}
