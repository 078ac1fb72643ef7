//! What the GitHub tests share (`deployments_tests.rs`, `dispatch_tests.rs`): the GitHub REST
//! API double (`tests/github_api/github_api.py`, which checks every request against GitHub's
//! published description of the operations used, `tests/github_api/rest-api-subset.json`, and
//! answers with the documented shapes), the Actions variables and sessions pointed at it, and
//! a few fixtures.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::api::Settings;
use super::deployments::Session;
use super::event::{from_tag, Resolved, Trigger, TriggerSource};
use crate::tag::ReleaseTag;

pub(super) const TOKEN: &str = "test-token-Zq81-not-a-secret";
const OWNER: &str = "acme";
const REPO: &str = "shop";

/// The double, started on a free port; stopped when dropped.
pub(super) struct Double {
    child: Child,
    /// `GITHUB_API_URL` for ferry (with the prefix, if any).
    pub(super) api_url: String,
    /// Where the control endpoints are.
    root: String,
    http: reqwest::Client,
}

impl Double {
    pub(super) fn start(prefix: &str) -> Double {
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

    pub(super) async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_double/{path}", self.root))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(super) async fn release(&self, tag: &str, draft: bool, prerelease: bool) {
        self.control(
            "releases",
            json!({"owner": OWNER, "repo": REPO, "tag_name": tag, "draft": draft, "prerelease": prerelease}),
        )
        .await;
    }

    /// An earlier deployment, with its statuses (oldest first); returns its id.
    pub(super) async fn earlier(
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
    pub(super) async fn requests(&self) -> Vec<Value> {
        self.get("log").await["requests"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Asserts that every request followed the description and carried the token.
    pub(super) async fn assert_clean(&self) {
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
    pub(super) async fn latest_states(&self) -> HashMap<u64, String> {
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

    pub(super) async fn fault(&self, fault: Value) {
        self.control("fault", fault).await;
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn vars(api_url: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("GITHUB_TOKEN", TOKEN.to_string()),
        ("GITHUB_REPOSITORY", format!("{OWNER}/{REPO}")),
        ("GITHUB_API_URL", api_url.to_string()),
        ("GITHUB_SERVER_URL", "https://github.com".to_string()),
        ("GITHUB_RUN_ID", "7001".to_string()),
        ("GITHUB_RUN_ATTEMPT", "2".to_string()),
    ])
}

pub(super) const LOG_URL: &str = "https://github.com/acme/shop/actions/runs/7001/attempts/2";

pub(super) fn session(api_url: &str) -> Session {
    session_with(vars(api_url), None)
}

pub(super) fn session_with(
    vars: HashMap<&'static str, String>,
    budget: Option<Duration>,
) -> Session {
    let mut settings = Settings::from_vars(|k| vars.get(k).cloned(), None);
    if let (Ok(s), Some(b)) = (settings.as_mut(), budget) {
        s.budget = b;
    }
    Session::new(settings)
}

pub(super) fn tag(t: &str) -> ReleaseTag {
    crate::tag::parse(t, &["rc".to_string()]).unwrap()
}

pub(super) const DIGEST: &str =
    "sha256:4f1c0a6d1e2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5";

pub(super) fn posted_statuses(requests: &[Value], id: u64) -> Vec<Value> {
    let path = format!("/repos/{OWNER}/{REPO}/deployments/{id}/statuses");
    requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with(&path))
        .map(|r| r["body"].clone())
        .collect()
}

pub(super) fn dispatch(t: &str) -> Trigger {
    match from_tag(t) {
        Resolved::Deploy(mut trigger) => {
            trigger.source = TriggerSource::WorkflowDispatch;
            trigger
        }
        Resolved::Nothing(m) => panic!("{m}"),
    }
}
