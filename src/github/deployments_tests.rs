//! Tests against `tests/github_api/github_api.py`, a GitHub REST API double that checks every
//! request against GitHub's published description of the operations used
//! (`tests/github_api/rest-api-subset.json`) and answers with the documented shapes.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::error::exit_code;
use crate::github::event::{from_tag, Resolved};

const TOKEN: &str = "test-token-Zq81-not-a-secret";
const OWNER: &str = "acme";
const REPO: &str = "shop";

/// The double, started on a free port; stopped when dropped.
struct Double {
    child: Child,
    /// `GITHUB_API_URL` for ferry (with the prefix, if any).
    api_url: String,
    /// Where the control endpoints are.
    root: String,
    http: reqwest::Client,
}

impl Double {
    fn start(prefix: &str) -> Double {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/github_api/github_api.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).args(["--port", "0", "--token", TOKEN]);
        if !prefix.is_empty() {
            cmd.args(["--prefix", prefix]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the GitHub API double");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let api_url = line
            .trim()
            .strip_prefix("GITHUB_API_URL=")
            .unwrap_or_else(|| panic!("the double said {line:?}"))
            .to_string();
        let root = api_url.strip_suffix(prefix).unwrap().to_string();
        Double {
            child,
            api_url,
            root,
            http: reqwest::Client::new(),
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/_double/{path}", self.root))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_double/{path}", self.root))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn release(&self, tag: &str, draft: bool, prerelease: bool) {
        self.control(
            "releases",
            json!({"owner": OWNER, "repo": REPO, "tag_name": tag, "draft": draft, "prerelease": prerelease}),
        )
        .await;
    }

    /// An earlier deployment, with its statuses (oldest first); returns its id.
    async fn earlier(
        &self,
        tag: &str,
        environment: &str,
        production: bool,
        states: &[&str],
    ) -> u64 {
        let v = self
            .control(
                "deployments",
                json!({"owner": OWNER, "repo": REPO, "ref": tag, "environment": environment,
                       "production_environment": production, "states": states}),
            )
            .await;
        v["id"].as_u64().unwrap()
    }

    /// The API requests received: (method, path without prefix/query, body).
    async fn requests(&self) -> Vec<Value> {
        self.get("log").await["requests"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Asserts that every request followed the description and carried the token.
    async fn assert_clean(&self) {
        let log = self.get("log").await;
        let violations = log["violations"].as_array().unwrap();
        assert!(
            violations.is_empty(),
            "requests off the description: {violations:#?}"
        );
        for r in log["requests"].as_array().unwrap() {
            assert_eq!(r["authorization_ok"], true, "{r}");
            assert_eq!(r["headers"]["x-github-api-version"], "2022-11-28", "{r}");
        }
    }

    /// The latest state of each deployment, by id.
    async fn latest_states(&self) -> HashMap<u64, String> {
        let state = self.get("state").await;
        state["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let latest = d["statuses"][0]["state"].as_str().unwrap_or("").to_string();
                (d["id"].as_u64().unwrap(), latest)
            })
            .collect()
    }

    async fn fault(&self, fault: Value) {
        self.control("fault", fault).await;
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vars(api_url: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("GITHUB_TOKEN", TOKEN.to_string()),
        ("GITHUB_REPOSITORY", format!("{OWNER}/{REPO}")),
        ("GITHUB_API_URL", api_url.to_string()),
        ("GITHUB_SERVER_URL", "https://github.com".to_string()),
        ("GITHUB_RUN_ID", "7001".to_string()),
        ("GITHUB_RUN_ATTEMPT", "2".to_string()),
    ])
}

const LOG_URL: &str = "https://github.com/acme/shop/actions/runs/7001/attempts/2";

fn session(api_url: &str) -> Session {
    session_with(vars(api_url), None)
}

fn session_with(vars: HashMap<&'static str, String>, budget: Option<Duration>) -> Session {
    let mut settings = Settings::from_vars(|k| vars.get(k).cloned(), None);
    if let (Ok(s), Some(b)) = (settings.as_mut(), budget) {
        s.budget = b;
    }
    Session::new(settings)
}

fn tag(t: &str) -> ReleaseTag {
    crate::tag::parse(t, &["rc".to_string()]).unwrap()
}

const DIGEST: &str = "sha256:4f1c0a6d1e2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5";

fn posted_statuses(requests: &[Value], id: u64) -> Vec<Value> {
    let path = format!("/repos/{OWNER}/{REPO}/deployments/{id}/statuses");
    requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with(&path))
        .map(|r| r["body"].clone())
        .collect()
}

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

fn dispatch(t: &str) -> Trigger {
    match from_tag(t) {
        Resolved::Deploy(mut trigger) => {
            trigger.source = TriggerSource::WorkflowDispatch;
            trigger
        }
        Resolved::Nothing(m) => panic!("{m}"),
    }
}

#[tokio::test]
async fn workflow_dispatch_refuses_drafts_and_contradicting_prerelease_flags() {
    let gh = Double::start("");
    gh.release("v3.0.0", true, false).await; // a draft
    gh.release("v3.1.0", false, true).await; // final tag marked pre-release
    gh.release("v3.2.0-rc.1", false, false).await; // rc tag not marked pre-release
    gh.release("v3.3.0-rc.1", false, true).await; // consistent
    gh.release("v3.3.0", false, false).await; // consistent

    for (t, needle) in [
        ("v3.0.0", "drafts never deploy"),
        (
            "v3.1.0",
            "marked as a pre-release but its tag is a final release",
        ),
        (
            "v3.2.0-rc.1",
            "not marked as a pre-release but its tag is a pre-release",
        ),
        ("v3.9.0", "no published release has the tag v3.9.0"),
    ] {
        let mut s = session(&gh.api_url);
        let mut trigger = dispatch(t);
        let err = s
            .check_dispatch_release(&mut trigger, &tag(t))
            .await
            .unwrap_err();
        assert_eq!(exit_code(&err), 2, "{t}: {err:#}");
        assert!(format!("{err:#}").contains(needle), "{t}: {err:#}");
        assert!(classify(&err).unwrap().hint.is_some(), "{t}");
    }
    for t in ["v3.3.0-rc.1", "v3.3.0"] {
        let mut s = session(&gh.api_url);
        let mut trigger = dispatch(t);
        s.check_dispatch_release(&mut trigger, &tag(t))
            .await
            .unwrap();
        assert_eq!(trigger.release_prerelease, Some(t.contains("-rc.")));
        let url = format!("https://github.com/acme/shop/releases/tag/{t}");
        assert_eq!(trigger.release_url.as_deref(), Some(url.as_str()));
        assert_eq!(s.report().release_url.as_deref(), Some(url.as_str()));
        assert!(s.report().warnings.is_empty());
    }
    let lookups: Vec<String> = gh
        .requests()
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lookups.len(), 6);
    assert!(lookups
        .iter()
        .all(|p| p.starts_with("/repos/acme/shop/releases/tags/")));
    gh.assert_clean().await;

    // A release event (or --tag) is not looked up: the event said it all.
    let mut s = session(&gh.api_url);
    let mut trigger = dispatch("v3.0.0");
    trigger.source = TriggerSource::Release;
    s.check_dispatch_release(&mut trigger, &tag("v3.0.0"))
        .await
        .unwrap();
    assert_eq!(gh.requests().await.len(), 6);

    // GitHub down during the lookup: deploy on the tag alone, with a warning.
    gh.fault(json!({"status": 503})).await;
    let mut s = session(&gh.api_url);
    let mut trigger = dispatch("v3.3.0");
    s.check_dispatch_release(&mut trigger, &tag("v3.3.0"))
        .await
        .unwrap();
    assert_eq!(trigger.release_prerelease, None);
    assert!(
        s.report().warnings[0].contains("HTTP 503"),
        "{:?}",
        s.report().warnings
    );
}

#[tokio::test]
async fn github_api_url_is_honoured_for_github_enterprise() {
    let gh = Double::start("/api/v3");
    assert!(gh.api_url.ends_with("/api/v3"));
    gh.release("v5.0.0", false, false).await;
    gh.earlier("v4.0.0", "production", true, &["success"]).await;
    let mut s = session(&gh.api_url);
    let mut trigger = dispatch("v5.0.0");
    s.check_dispatch_release(&mut trigger, &tag("v5.0.0"))
        .await
        .unwrap();
    s.start(&DeploymentRequest::new(
        &tag("v5.0.0"),
        "production",
        DIGEST,
    ))
    .await;
    s.finish(Outcome::Success, "live").await;
    assert!(s.report().warnings.is_empty(), "{:?}", s.report().warnings);
    assert_eq!(s.report().inactivated.len(), 1);
    let requests = gh.requests().await;
    assert_eq!(requests.len(), 7, "{requests:#?}");
    for r in &requests {
        assert!(
            r["path"]
                .as_str()
                .unwrap()
                .starts_with("/api/v3/repos/acme/shop/"),
            "{r}"
        );
    }
    gh.assert_clean().await; // a request outside /api/v3 would be a violation
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

#[tokio::test]
async fn the_double_rejects_requests_off_the_description() {
    // The checks above are only worth something if the double can say no.
    let gh = Double::start("");
    let dep = gh.earlier("v1.0.0", "staging", false, &[]).await;
    let base = &gh.api_url;
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: String, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .header("Accept", "application/vnd.github+json")
            .header("User-Agent", "test")
            .json(&body)
            .send()
    };
    let statuses = format!("/repos/acme/shop/deployments/{dep}/statuses");
    send(
        reqwest::Method::POST,
        statuses.clone(),
        json!({"state": "done"}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::POST,
        statuses.clone(),
        json!({"state": "success", "logurl": "x"}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::POST,
        statuses,
        json!({"description": "no state"}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::POST,
        "/repos/acme/shop/deployments".into(),
        json!({"ref": "v1.0.0", "required_contexts": "none"}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::PATCH,
        "/repos/acme/shop/deployments".into(),
        json!({}),
    )
    .await
    .unwrap();
    let log = gh.get("log").await;
    let v: Vec<&str> = log["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let has = |needle: &str| v.iter().any(|x| x.contains(needle));
    assert!(has("body.state: \"done\" is not one of"), "{v:#?}");
    assert!(has("member 'logurl' is not in the description"), "{v:#?}");
    assert!(has("required member 'state' is missing"), "{v:#?}");
    assert!(has("body.required_contexts: expected array"), "{v:#?}");
    assert!(
        has("PATCH /repos/acme/shop/deployments is not an operation"),
        "{v:#?}"
    );
}

#[test]
fn settings_from_the_actions_environment() {
    let none = |_: &str| None::<String>;
    assert_eq!(
        Settings::from_vars(none, Some("o/r")).unwrap_err(),
        "GITHUB_TOKEN is not set"
    );
    let only_token = |k: &str| (k == "GITHUB_TOKEN").then(|| "t0k3n".to_string());
    assert!(Settings::from_vars(only_token, None)
        .unwrap_err()
        .contains("GITHUB_REPOSITORY"));
    let s = Settings::from_vars(only_token, Some("o/r")).unwrap();
    assert_eq!(s.api_url, "https://api.github.com");
    assert_eq!((s.owner.as_str(), s.repo.as_str()), ("o", "r"));
    assert_eq!(s.log_url, None);
    assert_eq!(s.budget, DEFAULT_BUDGET);
    for bad in ["o", "o/r/x", "../r", "o/", "o r/x"] {
        assert!(Settings::from_vars(only_token, Some(bad)).is_err(), "{bad}");
    }
    let ghes = |k: &str| match k {
        "GITHUB_TOKEN" => Some("t0k3n".into()),
        "GITHUB_REPOSITORY" => Some("team/app".into()),
        "GITHUB_API_URL" => Some("https://ghe.example.com/api/v3/".into()),
        "GITHUB_SERVER_URL" => Some("https://ghe.example.com".into()),
        "GITHUB_RUN_ID" => Some("42".into()),
        _ => None,
    };
    let s = Settings::from_vars(ghes, None).unwrap();
    assert_eq!(s.api_url, "https://ghe.example.com/api/v3");
    assert_eq!(
        s.log_url.as_deref(),
        Some("https://ghe.example.com/team/app/actions/runs/42")
    );
    for bad in [
        "ftp://x",
        "https://user:pw@x",
        "https://x/?q=1",
        "not a url",
    ] {
        let v = |k: &str| match k {
            "GITHUB_API_URL" => Some(bad.to_string()),
            other => ghes(other),
        };
        assert!(
            Settings::from_vars(v, None)
                .unwrap_err()
                .contains("GITHUB_API_URL"),
            "{bad}"
        );
    }
    assert_eq!(
        crate::github::actions::run_url_from(None, Some("o/r"), Some("12"), Some("3")).as_deref(),
        Some("https://github.com/o/r/actions/runs/12/attempts/3")
    );
    assert_eq!(
        crate::github::actions::run_url_from(None, Some("o/r"), Some("12; rm"), Some("3")),
        None
    );
    assert_eq!(
        crate::github::actions::run_url_from(None, Some("o/r"), Some("12"), Some("x")).as_deref(),
        Some("https://github.com/o/r/actions/runs/12")
    );
}

#[test]
fn without_a_token_nothing_is_sent_and_the_report_says_why() {
    let mut s = Session::new(Err("GITHUB_TOKEN is not set".into()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        s.start(&DeploymentRequest::new(
            &tag("v1.0.0"),
            "production",
            DIGEST,
        ))
        .await;
        s.finish(Outcome::Success, "live").await;
        let mut trigger = dispatch("v1.0.0");
        s.check_dispatch_release(&mut trigger, &tag("v1.0.0"))
            .await
            .unwrap();
    });
    let report = s.report();
    assert_eq!(report.skipped.as_deref(), Some("GITHUB_TOKEN is not set"));
    assert_eq!(report.deployment_id, None);
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("not looked up on GitHub (GITHUB_TOKEN is not set)"));
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
