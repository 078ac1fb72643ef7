//! Tests of the release lookup for a `workflow_dispatch`, GitHub Enterprise's API root, the
//! settings read from the Actions environment, a run without a token, and the GitHub REST API
//! double itself (it must say no to requests off GitHub's description; see `test_support.rs`).
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use super::api::{Settings, DEFAULT_BUDGET};
use super::deployments::{DeploymentRequest, Outcome, Session};
use super::event::TriggerSource;
use super::test_support::{dispatch, session, tag, Double, DIGEST, TOKEN};
use crate::error::{classify, exit_code};

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
    assert_eq!(
        s.deployments_page.as_deref(),
        Some("https://ghe.example.com/team/app/deployments")
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
