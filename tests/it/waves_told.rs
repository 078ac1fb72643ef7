//! What a release in waves tells people: one GitHub deployment for the environment (not one
//! per target) carrying the release's digest, and one notification at its start and one at
//! its end, naming every target's outcome, as an environment of one does.

use serde_json::{json, Value};

use crate::common::*;
use crate::github::{Double, TOKEN};
use crate::waves::{World, EU};

/// The GitHub Actions variables of a run of `acme/shop` against the API double.
fn actions(gh: &Double) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_TOKEN", TOKEN.to_string()),
        ("GITHUB_REPOSITORY", "acme/shop".into()),
        ("GITHUB_API_URL", gh.api_url.clone()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("GITHUB_RUN_ID", "7018".into()),
        ("GITHUB_RUN_ATTEMPT", "1".into()),
    ]
}

/// A deployment's statuses, newest first (as GitHub lists them): (state, description).
fn statuses(d: &Value) -> Vec<(String, String)> {
    d["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["state"].as_str().unwrap().to_string(),
                s["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_in_waves_is_one_github_deployment_with_its_digest() {
    let gh = Double::start();
    for tag in ["v1.0.0", "v1.1.0"] {
        gh.control("tags", json!({"owner": "acme", "repo": "shop", "tag": tag}))
            .await;
    }
    let w = World::new().await;
    let v1 = w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");

    // Both waves pass: one deployment for production, in_progress then success.
    let o = w.run_with("deploy", "v1.0.0", &[], &actions(&gh));
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let state = gh.get("state").await;
    let deployments = state["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "one per environment: {state}");
    let d = &deployments[0];
    assert_eq!(d["ref"], "v1.0.0");
    assert_eq!(d["environment"], "production");
    assert_eq!(d["production_environment"], true);
    assert_eq!(d["payload"]["digest"], v1.as_str(), "{d}");
    assert_eq!(d["payload"]["tag"], "v1.0.0", "{d}");
    assert_eq!(
        d["description"],
        format!(
            "ferry: v1.0.0 ({}) to production in us-east-1, then {EU}",
            &v1[..19]
        ),
        "the description names every target, wave by wave"
    );
    let s = statuses(d);
    assert_eq!(
        s.iter().map(|(st, _)| st.as_str()).collect::<Vec<_>>(),
        ["success", "in_progress"],
        "{d}"
    );
    assert_eq!(
        s[0].1,
        format!("v1.0.0: us-east-1 deployed, {EU} deployed"),
        "the last status names every target"
    );
    assert_eq!(report["github"]["deployment_id"], d["id"], "{report}");

    // v1.1.0 fails its smoke check in wave 2: the same one deployment says that it is rolling
    // back, then failure (exit 4, as a rolled-back environment of one).
    let v11 = w.rc("v1.1.0-rc.1", "110", "smoke-error").await;
    assert_eq!(w.deploy("v1.1.0-rc.1", 0)["outcome"], "deployed");
    let o = w.run_with("deploy", "v1.1.0", &[], &actions(&gh));
    assert_exit(&o, 4);
    let state = gh.get("state").await;
    let deployments = state["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 2, "one more for v1.1.0: {state}");
    let d = &deployments[1];
    assert_eq!(d["ref"], "v1.1.0");
    assert_eq!(d["environment"], "production");
    assert_eq!(d["payload"]["digest"], v11.as_str(), "{d}");
    let s = statuses(d);
    assert_eq!(
        s.iter().map(|(st, _)| st.as_str()).collect::<Vec<_>>(),
        ["failure", "in_progress", "in_progress"],
        "{d}"
    );
    assert_eq!(
        s[1].1,
        "failed in production/eu-west-1; rolling back production/us-east-1"
    );
    assert_eq!(
        s[0].1,
        format!("v1.1.0: us-east-1 reverted, {EU} rolled back"),
        "{d}"
    );
    // v1.0.0's deployment is left as it was: v1.1.0 never succeeded.
    assert_eq!(statuses(&deployments[0])[0].0, "success");
    let log = gh.get("log").await;
    assert_eq!(
        log["violations"],
        json!([]),
        "every request follows GitHub's description"
    );
}

/// `[[notify]]` in production's file: a webhook and Slack, each told once at the start and
/// once at the end of a release, whatever the number of targets.
const NOTIFY: &str = "[[notify]]\nkind = \"webhook\"\nurl_env = \"FERRY_WAVES_HOOK\"\n[[notify]]\nkind = \"slack\"\nurl_env = \"FERRY_WAVES_SLACK\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_release_in_waves_notifies_once_with_every_target() {
    let (hook_url, hook) = crate::notify::receiver(204);
    let (slack_url, slack) = crate::notify::receiver(200);
    let w = World::new().await;
    w.write_config(NOTIFY);
    let env = [
        ("FERRY_WAVES_HOOK", format!("{hook_url}/deploys")),
        ("FERRY_WAVES_SLACK", format!("{slack_url}/services/T0/B0/x")),
    ];
    let events = |from: usize| -> Vec<Value> {
        hook.lock().unwrap()[from..]
            .iter()
            .map(|s| s.body.clone())
            .collect()
    };
    let v1 = w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");

    let o = w.run_with("deploy", "v1.0.0", &[], &env);
    assert_exit(&o, 0);
    let e = events(0);
    assert_eq!(e.len(), 2, "a start and an end, not one per target: {e:?}");
    for (ev, kind) in e.iter().zip(["start", "success"]) {
        assert_eq!(ev["event"], kind, "{ev}");
        assert_eq!(ev["environment"], "production", "{ev}");
        assert_eq!(ev["release"], "v1.0.0", "{ev}");
        assert_eq!(ev["digest"], v1.as_str(), "{ev}");
    }
    let verdict = e[1]["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("production/us-east-1 (wave 1): deployed")
            && verdict.contains("production/eu-west-1 (wave 2): deployed"),
        "{verdict}"
    );
    let texts: Vec<String> = slack
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.body["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[1].contains("*v1.0.0* deployed — *production*")
            && texts[1].contains(&format!("`{}…`", &v1[..15]))
            && texts[1].contains("production/eu-west-1 (wave 2): deployed"),
        "{texts:?}"
    );

    // Wave 2 fails and both regions go back: one rollback event naming both.
    let v11 = w.rc("v1.1.0-rc.1", "110", "smoke-error").await;
    assert_eq!(w.deploy("v1.1.0-rc.1", 0)["outcome"], "deployed");
    let o = w.run_with("deploy", "v1.1.0", &[], &env);
    assert_exit(&o, 4);
    let e = events(2);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0]["event"], "start");
    assert_eq!(e[1]["event"], "rollback");
    for ev in &e {
        assert_eq!(ev["digest"], v11.as_str(), "{ev}");
    }
    let verdict = e[1]["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("production/us-east-1 (wave 1): rolled back to v1.0.0")
            && verdict.contains("production/eu-west-1 (wave 2): rolled back"),
        "{verdict}"
    );

    // A release refused before anything changed (no candidate) tells nobody, as for an
    // environment of one.
    let o = w.run_with("deploy", "v1.2.0", &[], &env);
    assert_exit(&o, 3);
    assert_eq!(events(4), Vec::<Value>::new());
    assert_eq!(slack.lock().unwrap().len(), 4);
}
