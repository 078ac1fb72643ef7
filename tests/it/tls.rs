//! One trust store for every connection: a registry, a smoke endpoint and the AWS API (moto
//! behind a TLS proxy) on TLS signed by a private CA made in the test. With `SSL_CERT_FILE` naming that CA, ferry reads the registry
//! and passes the smoke check over https; without it, both are refused for the certificate,
//! which shows the CA is trusted only through the platform store's standard variable (the same
//! one the AWS SDK's HTTPS client honours), not by some bundled list or by accident.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use serde_json::Value;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A second `docker-registry` serving `plain`'s storage and htpasswd over TLS.
fn tls_registry(plain: &Registry, pki: &Path) -> (Proc, u16) {
    let port = free_port();
    let dir = plain.data_dir();
    let parent = dir.parent().unwrap();
    let cfg = parent.join("tls-config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {data}}}\n  maintenance: {{uploadpurging: {{enabled: false}}}}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\nauth:\n  htpasswd: {{realm: ferry-test, path: {htpasswd}}}\n",
            data = dir.display(),
            cert = pki.join("server.pem").display(),
            key = pki.join("server.key").display(),
            htpasswd = parent.join("htpasswd").display(),
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/bin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is missing: run scripts/setup");
    wait_for_port(port, "docker-registry (TLS)");
    (Proc(child), port)
}

/// An https endpoint (private CA) answering what `upstream` answers.
fn tls_proxy(pki: &Path, upstream: &str) -> (Proc, u16) {
    let (child, port) = announced(
        Command::new("python3")
            .arg(fixture("tls.py"))
            .arg("proxy")
            .arg(pki)
            .arg(upstream),
        "TLS_PORT",
        "tests/fixtures/tls.py proxy",
    );
    (Proc(child), port.parse().unwrap())
}

/// Runs ferry with `env`, trusting `ca` through `SSL_CERT_FILE` or (None) trusting only
/// the platform store.
fn ferry_trusting(
    args: &[&str],
    env: &[(&str, String)],
    ca: Option<&Path>,
) -> std::process::Output {
    let mut cmd = ferry_command(args, env);
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    cmd.output().expect("running ferry")
}

/// A new private CA and a server certificate for 127.0.0.1 signed by it.
fn private_ca() -> tempfile::TempDir {
    let pki = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(fixture("tls.py"))
        .arg("ca")
        .arg(pki.path())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "tls.py ca: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pki
}

/// The AWS SDK's calls (STS, ECR) go through the same trust store: moto behind the CA.
#[test]
fn aws_calls_trust_the_same_store() {
    let pki = private_ca();
    let ca = pki.path().join("ca.pem");
    let (_aws, port) = tls_proxy(pki.path(), &moto_url());
    let spec = EnvSpec::new();
    let dir = spec.write();
    let registry = Registry::for_account(&spec.staging_account);
    let digest = registry.push_image(&spec.repo, "v3.0.0-rc.1", &[]);
    let env = [
        ("AWS_ENDPOINT_URL", format!("https://127.0.0.1:{port}")),
        ("FERRY_REGISTRY_ENDPOINTS", registry.endpoint_entry()),
    ];
    let args = [
        "plan",
        "--environments",
        dir.path().to_str().unwrap(),
        "--tag",
        "v3.0.0-rc.1",
        "--output",
        "json",
    ];

    // Not trusted: AssumeRole over TLS is refused for the certificate.
    let o = ferry_trusting(&args, &env, None);
    let all = format!("{}\n{}", stdout(&o), stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    assert!(plan["source"]["digest"].is_null(), "{all}");
    assert!(
        all.to_lowercase().contains("certificate") || all.contains("UnknownIssuer"),
        "the refusal should be about the certificate:\n{all}"
    );

    // Trusted through SSL_CERT_FILE: STS and ECR over TLS, then the registry.
    let o = ferry_trusting(&args, &env, Some(&ca));
    assert_exit(&o, 0);
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(plan["source"]["digest"], digest.as_str(), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_and_smoke_endpoint_behind_a_private_ca() {
    let pki = private_ca();
    let ca = pki.path().join("ca.pem");

    let mut spec = EnvSpec::new();
    let sim = EcsSim::start();
    let cluster = format!("{}-staging", spec.cluster);
    let registry = Registry::for_account(&spec.staging_account);
    let (_tls_reg, tls_reg_port) = tls_registry(&registry, pki.path());
    let (_smoke, smoke_port) = tls_proxy(pki.path(), &sim.endpoint);
    let health = sim.health_url(&cluster, &spec.service);
    let path = health.strip_prefix(&sim.endpoint).unwrap();
    spec.staging_smoke = Some(format!("https://127.0.0.1:{smoke_port}{path}"));
    let dir = spec.write();
    let envs = dir.path().to_str().unwrap();

    let image = |d: &str| format!("{}/{}@{d}", registry.ecr_host(), spec.repo);
    let base = registry.push_image(&spec.repo, "v0.9.0-rc.1", &["--seed", "90"]);
    sim.image(&image(&base), "0.9.0-rc.1", "healthy").await;
    sim.service(&cluster, &spec.service, &spec.container, &image(&base))
        .await;
    let rc1 = registry.push_image(&spec.repo, "v1.0.0-rc.1", &["--seed", "100"]);
    sim.image(&image(&rc1), "1.0.0-rc.1", "healthy").await;
    let rc2 = registry.push_image(&spec.repo, "v1.0.1-rc.1", &["--seed", "101"]);
    sim.image(&image(&rc2), "1.0.1-rc.1", "healthy").await;

    let over_tls = vec![
        (
            "FERRY_REGISTRY_ENDPOINTS",
            format!("{}=https://127.0.0.1:{tls_reg_port}", registry.ecr_host()),
        ),
        ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
        ("AWS_MAX_ATTEMPTS", "3".into()),
    ];

    // Not trusted: reading the registry over TLS fails on the certificate.
    let o = ferry_trusting(
        &[
            "plan",
            "--environments",
            envs,
            "--tag",
            "v1.0.0-rc.1",
            "--output",
            "json",
        ],
        &over_tls,
        None,
    );
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    let all = format!("{}\n{}", stdout(&o), stderr(&o));
    assert!(plan["source"]["digest"].is_null(), "{all}");
    assert!(
        all.to_lowercase().contains("certificate") || all.contains("UnknownIssuer"),
        "the refusal should be about the certificate:\n{all}"
    );

    // Trusted through SSL_CERT_FILE: the registry over TLS and the smoke check over TLS.
    let o = ferry_trusting(
        &[
            "deploy",
            "--environments",
            envs,
            "--tag",
            "v1.0.0-rc.1",
            "--output",
            "json",
        ],
        &over_tls,
        Some(&ca),
    );
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["outcome"], "deployed");
    assert_eq!(report["image"], image(&rc1).as_str());
    assert_eq!(report["smoke"][0]["ok"], true, "{report:#}");

    // The smoke endpoint alone behind the CA, not trusted: the registry is reached over
    // plain http, the smoke check fails on the certificate, the release is rolled back.
    let plain = vec![
        ("FERRY_REGISTRY_ENDPOINTS", registry.endpoint_entry()),
        ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
        ("AWS_MAX_ATTEMPTS", "3".into()),
    ];
    let o = ferry_trusting(
        &[
            "deploy",
            "--environments",
            envs,
            "--tag",
            "v1.0.1-rc.1",
            "--output",
            "json",
        ],
        &plain,
        None,
    );
    assert_exit(&o, 4);
    let all = format!("{}\n{}", stdout(&o), stderr(&o));
    // The same endpoint passed above when the CA was trusted, so the certificate is what
    // failed here. (src/smoke.rs words a TLS failure as "connection refused or unreachable"
    // today: it should print the error's cause, e.g. "invalid peer certificate: UnknownIssuer".)
    assert!(
        all.contains(&format!("smoke check https://127.0.0.1:{smoke_port}")),
        "the smoke check over TLS should be what failed:\n{all}"
    );
    let svc = sim.describe(&cluster, &spec.service).await;
    let running = sim
        .client()
        .describe_task_definition()
        .task_definition(svc.task_definition().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        running.task_definition().unwrap().container_definitions()[0].image(),
        Some(image(&rc1).as_str()),
        "rolled back to the release that passed"
    );
}

/// Nothing steps down from https to http: a source registry on TLS whose blob GETs redirect
/// to plain http on another host is refused, the other host hears nothing, and nothing is
/// tagged at the destination.
#[test]
fn a_redirect_from_https_to_plain_http_is_refused() {
    let pki = private_ca();
    let ca = pki.path().join("ca.pem");
    let a = Registry::start("a", "promo", "promo-secret-a");
    let b = Registry::start("b", "promo", "promo-secret-b");
    a.push_image("app", "v1", &[]);
    let fake = FakeRegistry::start("downgrade-redirect", Some(&a), 0.0);
    let (_tls, port) = tls_proxy(pki.path(), &format!("http://{}", fake.addr()));
    let o = ferry_trusting(
        &[
            "copy",
            "--dst-insecure",
            &format!("127.0.0.1:{port}/app:v1"),
            &format!("{}/app:v1", b.addr()),
        ],
        &[
            ("SRC_REGISTRY_USER", a.user.clone()),
            ("SRC_REGISTRY_PASSWORD", a.password.clone()),
            ("DST_REGISTRY_USER", b.user.clone()),
            ("DST_REGISTRY_PASSWORD", b.password.clone()),
        ],
        Some(&ca),
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("refusing to step down from https to plain http"),
        "{err}"
    );
    let seen = fake.requests();
    assert!(
        seen.iter().any(|r| r["listener"] == "registry"
            && r["path"].as_str().unwrap_or_default().contains("/blobs/")),
        "the blob GET reached the registry: {seen:?}"
    );
    assert!(
        seen.iter().all(|r| r["listener"] != "foreign"),
        "ferry followed the redirect to plain http: {seen:?}"
    );
    assert_eq!(b.skopeo_digest("app", "v1"), None);
}
