//! GitHub deployments through the CLI: `ferry deploy` in a GitHub Actions-like environment
//! talks to the GitHub API double (`tests/github_api`, which checks every request against
//! GitHub's published REST description) and leaves the deployment and its statuses a person
//! sees on the repository's page.

use std::path::Path;
use std::process::{Child, Command};

use serde_json::{json, Value};

use crate::common::announced;
use crate::verdicts::{Lab, Shape};

pub(crate) struct Double {
    pub(crate) api_url: String,
    child: Child,
}

impl Double {
    pub(crate) fn start() -> Double {
        let (child, api_url) = announced(
            Command::new("python3")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/github_api/github_api.py"))
                .args(["--port", "0", "--token", TOKEN]),
            "GITHUB_API_URL",
            "tests/github_api/github_api.py",
        );
        Double { api_url, child }
    }

    pub(crate) async fn control(&self, path: &str, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_double/{path}", self.api_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}/_double/{path}", self.api_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) const TOKEN: &str = "ghs_ferrytesttoken0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_in_actions_leaves_a_github_deployment_with_its_statuses() {
    let gh = Double::start();
    gh.control(
        "tags",
        json!({"owner": "acme", "repo": "shop", "tag": "v1.0.0-rc.1"}),
    )
    .await;
    let lab = Lab::new(Shape::default(), None).await;
    lab.release("v1.0.0-rc.1", "920", json!({"behavior": "healthy"}))
        .await;
    let (o, report) = lab.deploy_env(
        "v1.0.0-rc.1",
        3,
        &[
            ("GITHUB_TOKEN", TOKEN.to_string()),
            ("GITHUB_REPOSITORY", "acme/shop".into()),
            ("GITHUB_API_URL", gh.api_url.clone()),
            ("GITHUB_SERVER_URL", "https://github.com".into()),
            ("GITHUB_RUN_ID", "7001".into()),
            ("GITHUB_RUN_ATTEMPT", "1".into()),
        ],
    );
    crate::common::assert_exit(&o, 0);
    let all = format!("{}{}", crate::common::stdout(&o), crate::common::stderr(&o));
    assert!(!all.contains(TOKEN), "the token was printed");

    let log = gh.get("log").await;
    assert_eq!(
        log["violations"],
        json!([]),
        "every request follows GitHub's description"
    );
    let state = gh.get("state").await;
    let deployments = state["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{state}");
    let d = &deployments[0];
    assert_eq!(d["ref"], "v1.0.0-rc.1");
    assert_eq!(d["environment"], "staging");
    assert_eq!(d["production_environment"], false);
    let states: Vec<&str> = d["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    // Newest first, as GitHub lists them.
    assert_eq!(states, ["success", "in_progress"], "{d}");
    assert!(
        d["statuses"][0]["log_url"]
            .as_str()
            .unwrap()
            .contains("/acme/shop/actions/runs/7001"),
        "{d}"
    );
    assert_eq!(report["github"]["deployment_id"], d["id"], "{report}");
    assert_eq!(
        report["github"]["page_url"], "https://github.com/acme/shop/deployments",
        "{report}"
    );
}
