//! `ferry plan` where AWS cannot be asked: no credentials anywhere, or an endpoint that refuses
//! connections. One plain line says why, naming the endpoint and cause once; no SDK debug dump
//! reaches stderr; the answer comes in seconds, not after 40 s of retries. Nothing here leaves
//! the machine: every endpoint (AWS, instance metadata) is a loopback port.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;

/// A clean `ferry` process: no inherited AWS settings, no profile, no GitHub Actions.
fn ferry_alone(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .env("HOME", "/nonexistent/ferry-noaws-home")
        .env("AWS_REGION", "us-east-1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running ferry")
}

/// An instance metadata service that refuses every request (HTTP 403), as on a machine that is
/// not an EC2 instance behind a proxy: the SDK's credentials chain fails on it instead of
/// finding nothing, which is when it logs its debug dump.
fn forbidding_metadata_service() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden",
            );
        }
    });
    format!("http://{addr}")
}

fn plan(dir: &std::path::Path, tag: &str, env: &[(&str, String)]) -> (Output, Duration) {
    let started = Instant::now();
    let o = ferry_alone(
        &[
            "plan",
            "--environments",
            dir.to_str().unwrap(),
            "--tag",
            tag,
        ],
        env,
    );
    (o, started.elapsed())
}

fn no_dump(stderr: &str, what: &str) {
    for dump in ["ProviderError", "SdkBody", "ServiceError {", "Response {"] {
        assert!(
            !stderr.contains(dump),
            "{what}: {dump} on stderr:\n{stderr}"
        );
    }
}

#[test]
fn plan_without_credentials_says_so_once_and_where_ferry_looks() {
    let dir = EnvSpec::new().write();
    let imds = forbidding_metadata_service();
    let refused = format!("http://127.0.0.1:{}", free_port());
    for level in [None, Some("info"), Some("warn"), Some("error,ferry=info")] {
        let mut env = vec![
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.clone()),
            ("AWS_ENDPOINT_URL", refused.clone()),
        ];
        if let Some(l) = level {
            env.push(("FERRY_LOG", l.to_string()));
        }
        for tag in ["v1.2.3-rc.1", "v1.2.3"] {
            let what = format!("FERRY_LOG={level:?}, {tag}");
            let (o, took) = plan(dir.path(), tag, &env);
            assert_exit(&o, 0);
            let (out, err) = (stdout(&o), stderr(&o));
            no_dump(&err, &what);
            let lines: Vec<&str> = err
                .lines()
                .filter(|l| l.contains("no AWS credentials found"))
                .collect();
            assert_eq!(lines.len(), 1, "{what}: stderr:\n{err}");
            for place in [
                "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "id-token: write",
            ] {
                assert!(lines[0].contains(place), "{what}: {place}: {}", lines[0]);
            }
            // The plan names the cause once, and what it therefore did not read.
            assert_eq!(
                out.matches("no AWS credentials found").count(),
                1,
                "{what}: stdout:\n{out}"
            );
            assert!(out.contains("not read: records, source image"), "{out}");
            assert!(!out.contains("loading credentials"), "{what}: {out}");
            assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
        }
    }
}

#[test]
fn plan_against_a_refused_endpoint_answers_in_seconds() {
    let dir = EnvSpec::new().write();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "ferry-test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "ferry-test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ];
    // Production: records, source, target and task definitions would each have failed alike.
    let (o, took) = plan(dir.path(), "v1.2.3", &env);
    assert_exit(&o, 0);
    let (out, err) = (stdout(&o), stderr(&o));
    no_dump(&err, "refused");
    // Upper bound only, far above the 15 s goal that scripts/bench-no-aws measures.
    assert!(took < Duration::from_secs(30), "took {took:?}\n{err}");
    let unresolved: Vec<&str> = out.lines().filter(|l| l.contains("unresolved")).collect();
    assert_eq!(unresolved.len(), 1, "{out}");
    let line = unresolved[0];
    assert!(line.contains(&format!("cannot reach {endpoint}")), "{line}");
    assert_eq!(
        line.to_lowercase().matches("connection refused").count(),
        1,
        "{line}"
    );
    assert!(line.contains("target image, task definitions"), "{line}");
    // While it retries, it says so; then the answer, once.
    assert!(
        err.contains(&format!("no connection to {endpoint}; trying again")),
        "{err}"
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.contains(&format!("cannot reach {endpoint}: ")))
            .count(),
        1,
        "{err}"
    );
    assert_eq!(
        err.to_lowercase().matches("connection refused").count(),
        1,
        "{err}"
    );
}

#[test]
fn deploy_without_credentials_stops_before_changing_anything() {
    let dir = EnvSpec::new().write();
    let refused = format!("http://127.0.0.1:{}", free_port());
    let o = ferry_alone(
        &[
            "deploy",
            "--environments",
            dir.path().to_str().unwrap(),
            "--tag",
            "v1.2.3-rc.1",
        ],
        &[
            ("AWS_ENDPOINT_URL", refused),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ],
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    no_dump(&err, "deploy");
    assert!(err.contains("no AWS credentials found"), "{err}");
}
