//! `ferry plan`, `ferry validate` and the trigger, driven as a user would, against the local
//! world: moto for STS/ECR, real registries for image bytes, skopeo as the independent judge.

use crate::common::*;
use serde_json::Value;

fn endpoints(regs: &[&Registry]) -> (&'static str, String) {
    (
        "FERRY_REGISTRY_ENDPOINTS",
        regs.iter()
            .map(|r| r.endpoint_entry())
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn plan_json(dir: &std::path::Path, tag: &str, env: &[(&str, String)]) -> Value {
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.to_str().unwrap(),
            "--tag",
            tag,
            "--output",
            "json",
        ],
        env,
    );
    assert_exit(&o, 0);
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&o)))
}

#[test]
fn staging_plan_reads_the_rc_digest() {
    let spec = EnvSpec::new();
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    let pushed = staging.push_image(&spec.repo, "v1.2.3-rc.1", &[]);
    assert_eq!(
        staging.skopeo_digest(&spec.repo, "v1.2.3-rc.1").as_deref(),
        Some(pushed.as_str())
    );

    let plan = plan_json(dir.path(), "v1.2.3-rc.1", &[endpoints(&[&staging])]);
    assert_eq!(plan["tag"], "v1.2.3-rc.1");
    assert_eq!(plan["version"], "1.2.3-rc.1");
    assert_eq!(plan["environment"], "staging");
    assert_eq!(plan["account_id"], spec.staging_account.as_str());
    assert_eq!(plan["region"], region().as_str());
    assert_eq!(plan["promote"], false);
    assert_eq!(plan["source"]["digest"], pushed.as_str());
    assert_eq!(plan["source"]["tag"], "v1.2.3-rc.1");
    assert_eq!(
        plan["services"][0]["cluster"],
        format!("{}-staging", spec.cluster).as_str()
    );
    assert!(plan["smoke"].is_array());
    // No ECS here (moto's has no such service): only the task-definition preview is unresolved.
    let unresolved = plan["unresolved"].as_array().unwrap();
    assert!(
        unresolved
            .iter()
            .all(|u| u.as_str().unwrap().starts_with("task definitions:")),
        "{unresolved:?}"
    );

    // Human output names the digest too, and no credential leaks anywhere.
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v1.2.3-rc.1",
        ],
        &[endpoints(&[&staging])],
    );
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("digest       {pushed}")),
        "{}",
        stdout(&o)
    );
    for out in [stdout(&o), stderr(&o)] {
        assert!(!out.contains(&staging.password), "password leaked: {out}");
    }
}

#[test]
fn production_plan_gates_the_highest_rc_by_semver_precedence() {
    let spec = EnvSpec::new();
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    let prod = Registry::for_account(&spec.prod_account);
    staging.push_image(&spec.repo, "v2.0.0-rc.2", &["--seed", "2"]);
    let rc10 = staging.push_image(&spec.repo, "v2.0.0-rc.10", &["--seed", "10"]);
    staging.push_image(&spec.repo, "v2.0.0-rc.9", &["--seed", "9"]);
    staging.push_image(&spec.repo, "v2.0.1-rc.11", &["--seed", "11"]);

    // Nothing was deployed to staging: the gate refuses, naming the highest by semver
    // precedence (rc.10 sorts after rc.9) and listing every candidate of 2.0.0 only.
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v2.0.0",
        ],
        &[endpoints(&[&staging, &prod])],
    );
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("the highest candidate, v2.0.0-rc.10, never deployed in staging"),
        "{err}"
    );
    let pos = |t: &str| {
        err.find(&format!("  {t} "))
            .unwrap_or_else(|| panic!("{t} not listed: {err}"))
    };
    assert!(pos("v2.0.0-rc.2") < pos("v2.0.0-rc.9") && pos("v2.0.0-rc.9") < pos("v2.0.0-rc.10"));
    assert!(err.contains(&rc10), "{err}");
    assert!(!err.contains("v2.0.1-rc.11"), "{err}");
}

#[test]
fn production_without_a_verified_rc_is_refused() {
    let spec = EnvSpec::new();
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    let prod = Registry::for_account(&spec.prod_account);
    staging.push_image(&spec.repo, "v3.0.1-rc.1", &[]);
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v3.0.0",
        ],
        &[endpoints(&[&staging, &prod])],
    );
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("no release candidate of v3.0.0 was deployed to staging"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("hint: release v3.0.0-rc.N to staging first"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn staging_tag_without_image_is_invalid() {
    let spec = EnvSpec::new();
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    staging.push_image(&spec.repo, "v1.0.0-rc.1", &[]);
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v1.0.0-rc.2",
        ],
        &[endpoints(&[&staging])],
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("no image tagged v1.0.0-rc.2"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unreachable_registry_leaves_digest_unresolved() {
    let spec = EnvSpec::new();
    let dir = spec.write();
    let port = free_port(); // nothing listens there
    let map = format!(
        "{}.dkr.ecr.{}.amazonaws.com=http://127.0.0.1:{port}",
        spec.staging_account,
        region()
    );
    let plan = plan_json(
        dir.path(),
        "v1.0.0-rc.1",
        &[("FERRY_REGISTRY_ENDPOINTS", map)],
    );
    assert_eq!(plan["source"]["digest"], Value::Null);
    assert!(
        plan["unresolved"][0].as_str().unwrap().contains("records:"),
        "{plan}"
    );
}

#[test]
fn validate_online_names_what_is_missing() {
    let spec = EnvSpec::new();
    let dir = spec.write();
    // Staging's registry does not answer: production's role cannot read it.
    let staging_host = format!(
        "{}.dkr.ecr.{}.amazonaws.com",
        spec.staging_account,
        region()
    );
    let o = ferry(
        &[
            "validate",
            "--online",
            "--environments",
            dir.path().to_str().unwrap(),
        ],
        &[(
            "FERRY_REGISTRY_ENDPOINTS",
            format!("{staging_host}=http://127.0.0.1:1"),
        )],
    );
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("production promotion source")
            && err.contains("production's role reading staging's repository"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "ECR repository {} does not exist in account {}",
            spec.repo, spec.staging_account
        )),
        "{err}"
    );
    // The role itself was assumed (moto accepts any role), and the stdout lists each check.
    assert!(stdout(&o).contains("assumed as"), "{}", stdout(&o));
}

/// A GitHub-Actions-like OIDC token endpoint on 127.0.0.1: answers `{"value": JWT}` to a
/// request carrying the bearer request token, and records each request line.
fn oidc_endpoint(
    request_token: &'static str,
    jwt: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut authorized = false;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if h.to_ascii_lowercase().starts_with("authorization:")
                    && h.trim_end().ends_with(&format!("bearer {request_token}"))
                {
                    authorized = true;
                }
            }
            log.lock().unwrap().push(request_line.trim().to_string());
            let (status, body) = if authorized {
                ("200 OK", format!("{{\"count\":1,\"value\":\"{jwt}\"}}"))
            } else {
                ("401 Unauthorized", "{}".to_string())
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (
        format!("http://127.0.0.1:{port}/_apis/token?api-version=2.0"),
        seen,
    )
}

#[test]
fn github_oidc_web_identity_end_to_end() {
    const REQUEST_TOKEN: &str = "gha-request-token-5ecret";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvc2hvcDplbnZpcm9ubWVudDpzdGFnaW5nIiwiYXVkIjoic3RzLmFtYXpvbmF3cy5jb20ifQ.c2lnbmF0dXJl";
    let spec = EnvSpec::new();
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    let pushed = staging.push_image(&spec.repo, "v4.0.0-rc.1", &[]);
    let (url, seen) = oidc_endpoint(REQUEST_TOKEN, JWT);
    let env = [
        endpoints(&[&staging]),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN.to_string()),
        // No base credentials at all: the web identity alone must get us in.
        ("AWS_ACCESS_KEY_ID", String::new()),
        ("AWS_SECRET_ACCESS_KEY", String::new()),
        ("FERRY_LOG", "debug".to_string()),
    ];
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v4.0.0-rc.1",
            "--output",
            "json",
        ],
        &env,
    );
    assert_exit(&o, 0);
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(plan["auth"], "github-oidc");
    // The digest was read from the staging account's registry with credentials that only
    // AssumeRoleWithWebIdentity into that account could produce.
    assert_eq!(plan["source"]["digest"], pushed.as_str(), "{}", stderr(&o));
    let requests = seen.lock().unwrap().clone();
    assert!(!requests.is_empty(), "the token endpoint was never called");
    assert!(
        requests
            .iter()
            .all(|r| r.contains("audience=sts.amazonaws.com") && r.contains("api-version=2.0")),
        "{requests:?}"
    );
    for out in [stdout(&o), stderr(&o)] {
        assert!(!out.contains(REQUEST_TOKEN), "request token leaked: {out}");
        assert!(!out.contains(JWT), "OIDC token leaked: {out}");
        assert!(
            !out.contains(&staging.password),
            "registry password leaked: {out}"
        );
    }

    // A wrong request token: a clear error naming the endpoint, not a credential.
    let mut env = env.to_vec();
    env[2].1 = "wrong-token".into();
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v4.0.0-rc.1",
            "--output",
            "json",
        ],
        &env,
    );
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(plan["source"]["digest"], Value::Null);
    let why = plan["unresolved"][0].as_str().unwrap();
    assert!(
        why.contains("OIDC token endpoint") && why.contains("401"),
        "{why}"
    );
    assert!(!stdout(&o).contains("wrong-token") && !stderr(&o).contains("wrong-token"));
}

#[test]
fn github_actions_outputs_summary_and_annotations() {
    let dir = EnvSpec::new().write();
    let gh = tempfile::tempdir().unwrap();
    let output = gh.path().join("output");
    let summary = gh.path().join("summary.md");
    let env = [
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_OUTPUT", output.to_str().unwrap().to_string()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap().to_string()),
    ];
    let o = ferry(
        &[
            "plan",
            "--offline",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v1.0.0-rc.3",
        ],
        &env,
    );
    assert_exit(&o, 0);
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(
        outputs.contains("environment=staging\n") && outputs.contains("version=1.0.0-rc.3\n"),
        "{outputs}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("### ferry plan: v1.0.0-rc.3 → staging"), "{md}");

    // A failure becomes an error annotation, with workflow-command escaping.
    let o = ferry(
        &[
            "plan",
            "--offline",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v1.0",
        ],
        &env,
    );
    assert_exit(&o, 2);
    // On stderr (GitHub reads workflow commands there too), so stdout stays machine-readable.
    assert_eq!(stdout(&o), "", "stdout is for results only");
    let err = stderr(&o);
    let annotations: Vec<&str> = err.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(
        annotations.len(),
        1,
        "one annotation, newlines escaped: {err}"
    );
    assert!(
        annotations[0].starts_with("::error title=ferry failed::release tag \"v1.0\" is not valid"),
        "{err}"
    );
}

/// `ferry plan --tag v2.0.0` (production) with staging's registry, holding v2.0.0-rc.1,
/// behind a fake registry in `mode`: the production plan lists staging's tags through it.
fn production_plan_through(mode: &str) -> (std::process::Output, FakeRegistry) {
    let spec = EnvSpec::new();
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    let prod = Registry::for_account(&spec.prod_account);
    staging.push_image(&spec.repo, "v2.0.0-rc.1", &[]);
    let fake = FakeRegistry::start(mode, Some(&staging), 0.0);
    let o = ferry(
        &[
            "plan",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v2.0.0",
        ],
        &[(
            "FERRY_REGISTRY_ENDPOINTS",
            format!(
                "{}=http://{},{}",
                staging.ecr_host(),
                fake.addr(),
                prod.endpoint_entry()
            ),
        )],
    );
    (o, fake)
}

/// A tag list with a malformed `Link` header (`>` before `<`): once a panic (exit 101), now
/// an ignored link.
#[test]
fn a_malformed_link_header_is_ignored_not_a_panic() {
    let (o, fake) = production_plan_through("bad-link");
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_exit(&o, 3);
    assert!(
        err.contains("the highest candidate, v2.0.0-rc.1, never deployed in staging"),
        "{err}"
    );
    assert!(
        fake.requests().iter().any(|r| r["path"]
            .as_str()
            .unwrap_or_default()
            .contains("/tags/list")),
        "the tag list went through the fake registry"
    );
}

/// A next-page `Link` to another origin is not followed: the credentials stay home.
#[test]
fn a_next_page_link_to_another_origin_is_not_followed() {
    let (o, fake) = production_plan_through("foreign-link");
    // plan shows what it could not read instead of failing (deploy would stop there).
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("unresolved") && out.contains("the next-page link leaves the registry"),
        "{out}"
    );
    let foreign: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r["listener"] == "foreign")
        .collect();
    assert!(foreign.is_empty(), "ferry followed the link: {foreign:?}");
}
