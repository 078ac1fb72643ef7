//! `ferry copy` and promotion against two real registries (Debian `docker-registry`), with
//! skopeo — a tool we did not write — as the judge of every digest.

use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// Runs `ferry copy --insecure SRC DST --output json` with basic credentials for both sides.
fn copy(src: &str, dst: &str, src_reg: &Registry, dst_reg: &Registry) -> std::process::Output {
    ferry(
        &["copy", "--insecure", src, dst, "--output", "json"],
        &[
            ("SRC_REGISTRY_USER", src_reg.user.clone()),
            ("SRC_REGISTRY_PASSWORD", src_reg.password.clone()),
            ("DST_REGISTRY_USER", dst_reg.user.clone()),
            ("DST_REGISTRY_PASSWORD", dst_reg.password.clone()),
        ],
    )
}

fn outcome(o: &std::process::Output) -> Value {
    assert_exit(o, 0);
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn pair() -> (Registry, Registry) {
    (
        Registry::start("a", "promo", "promo-secret-a"),
        Registry::start("b", "promo", "promo-secret-b"),
    )
}

/// Every manifest of the image graph at `repo:tag`, as skopeo reads it: (digest, raw bytes).
fn skopeo_children(reg: &Registry, repo: &str, tag: &str) -> Vec<String> {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &reg.creds(),
        ])
        .arg(format!("docker://{}/{repo}:{tag}", reg.addr()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["manifests"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["digest"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn skopeo_has_manifest(reg: &Registry, repo: &str, digest: &str) -> bool {
    Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &reg.creds(),
        ])
        .arg(format!("docker://{}/{repo}@{digest}", reg.addr()))
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn single_arch_oci_cold_then_noop() {
    let (a, b) = pair();
    let d = a.push_image("app", "v1", &[]);
    let out = outcome(&copy(
        &format!("{}/app:v1", a.addr()),
        &format!("{}/prod/app:v1", b.addr()),
        &a,
        &b,
    ));
    assert_eq!(out["digest"], d.as_str());
    assert_eq!(out["already_done"], false);
    assert_eq!(out["blobs_copied"], 3, "config + 2 layers");
    assert_eq!(
        b.skopeo_digest("prod/app", "v1").as_deref(),
        Some(d.as_str())
    );

    // No-op: the tag already points at the digest and every blob is proven present in one
    // concurrent round (source manifest, destination tag, 3 HEADs); nothing written.
    let out = outcome(&copy(
        &format!("{}/app:v1", a.addr()),
        &format!("{}/prod/app:v1", b.addr()),
        &a,
        &b,
    ));
    assert_eq!(out["already_done"], true);
    assert_eq!(out["requests"], 5, "{out}");
    assert_eq!(out["manifests_pushed"], 0, "{out}");
}

#[test]
fn docker_v2_pretty_printed_manifest_keeps_its_digest() {
    let (a, b) = pair();
    let d = a.push_image("app", "v2", &["--docker", "--pretty"]);
    let out = outcome(&copy(
        &format!("{}/app:v2", a.addr()),
        &format!("{}/app:v2", b.addr()),
        &a,
        &b,
    ));
    assert_eq!(
        out["media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        b.skopeo_digest("app", "v2").as_deref(),
        Some(d.as_str()),
        "non-canonical JSON copied byte for byte"
    );
}

#[test]
fn multi_platform_index_with_attestations() {
    let (a, b) = pair();
    for extra in [&["--attest"][..], &["--attest", "--docker", "--pretty"][..]] {
        let mut args = vec!["--platforms", "linux/amd64,linux/arm64"];
        args.extend_from_slice(extra);
        let tag = if extra.len() > 1 { "docker" } else { "oci" };
        let d = a.push_image("multi", tag, &args);
        let out = outcome(&copy(
            &format!("{}/multi:{tag}", a.addr()),
            &format!("{}/multi:{tag}", b.addr()),
            &a,
            &b,
        ));
        assert_eq!(
            out["manifests"], 5,
            "index + 2 platforms + 2 attestation manifests: {out}"
        );
        assert_eq!(b.skopeo_digest("multi", tag).as_deref(), Some(d.as_str()));
        let children = skopeo_children(&a, "multi", tag);
        assert_eq!(children.len(), 4);
        for c in children {
            assert!(skopeo_has_manifest(&b, "multi", &c), "child {c} missing");
        }
    }
}

#[test]
fn warm_copy_skips_every_blob_and_same_registry_mounts() {
    let (a, b) = pair();
    let d = a.push_image("app", "v3", &["--platforms", "linux/amd64,linux/arm64"]);
    outcome(&copy(
        &format!("{}/app:v3", a.addr()),
        &format!("{}/prod/app:v3", b.addr()),
        &a,
        &b,
    ));
    // The same copy again: one round proves everything is there.
    let noop = outcome(&copy(
        &format!("{}/app:v3", a.addr()),
        &format!("{}/prod/app:v3", b.addr()),
        &a,
        &b,
    ));
    assert_eq!(noop["already_done"], true, "{noop}");
    // Same image to a new tag: all blobs and children present, only the tag is written.
    // The read-back asks for the tag only: what the first round proved is not asked twice,
    // so it costs the no-op's requests plus the PUT and the GET of the tag.
    let out = outcome(&copy(
        &format!("{}/app:v3", a.addr()),
        &format!("{}/prod/app:v3-again", b.addr()),
        &a,
        &b,
    ));
    assert_eq!(out["blobs_copied"], 0);
    assert_eq!(out["blobs_skipped"], out["blobs"]);
    assert_eq!(out["manifests_pushed"], 1);
    assert_eq!(
        out["requests"].as_u64().unwrap(),
        noop["requests"].as_u64().unwrap() + 2,
        "retag {out} against no-op {noop}"
    );
    assert_eq!(
        b.skopeo_digest("prod/app", "v3-again").as_deref(),
        Some(d.as_str())
    );
    // Another repository in the same registry: blobs are mounted, not copied.
    let out = outcome(&copy(
        &format!("{}/prod/app:v3", b.addr()),
        &format!("{}/mirror/app:v3", b.addr()),
        &b,
        &b,
    ));
    assert!(out["blobs_mounted"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(out["blobs_copied"], 0, "{out}");
    assert_eq!(
        b.skopeo_digest("mirror/app", "v3").as_deref(),
        Some(d.as_str())
    );
}

#[test]
fn an_existing_tag_is_never_moved() {
    let (a, b) = pair();
    let new = a.push_image("app", "v4", &["--seed", "4"]);
    let old = b.push_image("app", "v4", &["--seed", "44"]);
    let o = copy(
        &format!("{}/app:v4", a.addr()),
        &format!("{}/app:v4", b.addr()),
        &a,
        &b,
    );
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&old) && err.contains(&new),
        "both digests named: {err}"
    );
    assert!(err.contains("refusing to move it"), "{err}");
    assert_eq!(
        b.skopeo_digest("app", "v4").as_deref(),
        Some(old.as_str()),
        "the tag did not move"
    );
}

#[test]
fn missing_source_and_wrong_credentials() {
    let (a, b) = pair();
    let o = copy(
        &format!("{}/app:nope", a.addr()),
        &format!("{}/app:nope", b.addr()),
        &a,
        &b,
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains(&format!(
            "source image {}/app:nope does not exist",
            a.addr()
        )),
        "{}",
        stderr(&o)
    );

    a.push_image("app", "v5", &[]);
    let o = ferry(
        &[
            "copy",
            "--insecure",
            &format!("{}/app:v5", a.addr()),
            &format!("{}/app:v5", b.addr()),
        ],
        &[
            ("REGISTRY_USER", "promo".into()),
            ("REGISTRY_PASSWORD", "wrong-password".into()),
        ],
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&a.addr()) && err.contains("credentials rejected"),
        "{err}"
    );
    assert!(!err.contains("wrong-password"), "password printed: {err}");

    // Plain http is for loopback only.
    let o = ferry(
        &[
            "copy",
            "--insecure",
            "registry.example.com/app:v5",
            &format!("{}/app:v5", b.addr()),
        ],
        &[],
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("only for registries on loopback"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_interrupted_copy_resumes_and_ends_byte_identical() {
    let (a, b) = pair();
    let d = a.push_image("big", "v6", &["--layers-kb", "30000,30000,30000,30000,512"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "copy",
            "--insecure",
            &format!("{}/big:v6", a.addr()),
            &format!("{}/big:v6", b.addr()),
        ])
        .env("SRC_REGISTRY_USER", &a.user)
        .env("SRC_REGISTRY_PASSWORD", &a.password)
        .env("DST_REGISTRY_USER", &b.user)
        .env("DST_REGISTRY_PASSWORD", &b.password)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the first blob has landed in the destination.
    let blobs = b.data_dir().join("docker/registry/v2/blobs/sha256");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none() {
        assert!(std::time::Instant::now() < deadline, "no blob ever landed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        b.skopeo_digest("big", "v6"),
        None,
        "the tag is written last: an interrupted copy leaves no tag"
    );

    let out = outcome(&copy(
        &format!("{}/big:v6", a.addr()),
        &format!("{}/big:v6", b.addr()),
        &a,
        &b,
    ));
    assert!(
        out["blobs_skipped"].as_u64().unwrap() >= 1,
        "what landed is not copied again: {out}"
    );
    assert_eq!(b.skopeo_digest("big", "v6").as_deref(), Some(d.as_str()));
}

#[test]
fn ecr_to_ecr_across_accounts_with_assumed_roles() {
    let src_acct = random_account();
    let dst_acct = random_account();
    let a = Registry::for_account(&src_acct);
    let b = Registry::for_account(&dst_acct);
    let d = a.push_image(
        "shop/api",
        "v7.0.0-rc.1",
        &["--platforms", "linux/amd64,linux/arm64", "--attest"],
    );
    let o = ferry(
        &[
            "copy",
            &format!("{}/shop/api:v7.0.0-rc.1", a.ecr_host()),
            &format!("{}/shop/api:v7.0.0", b.ecr_host()),
            "--source-role",
            &format!("arn:aws:iam::{src_acct}:role/reader"),
            "--target-role",
            &format!("arn:aws:iam::{dst_acct}:role/writer"),
            "--output",
            "json",
        ],
        &[(
            "FERRY_REGISTRY_ENDPOINTS",
            format!("{},{}", a.endpoint_entry(), b.endpoint_entry()),
        )],
    );
    let out = outcome(&o);
    assert_eq!(out["digest"], d.as_str());
    assert_eq!(
        b.skopeo_digest("shop/api", "v7.0.0").as_deref(),
        Some(d.as_str())
    );
    for s in [stdout(&o), stderr(&o)] {
        assert!(
            !s.contains(&a.password) && !s.contains(&b.password),
            "a registry password leaked"
        );
    }
}

/// A proxy that injects faults in front of `reg` (tests/fixtures/faultproxy.py).
struct FaultProxy {
    port: u16,
    child: std::process::Child,
}

impl FaultProxy {
    fn start(reg: &Registry, every: u32, mode: &str) -> FaultProxy {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(fixture("faultproxy.py"))
            .args([
                &reg.port.to_string(),
                "--every",
                &every.to_string(),
                "--mode",
                mode,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("PORT=").unwrap().parse().unwrap();
        FaultProxy { port, child }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn server_errors_throttling_and_dropped_connections_are_retried() {
    for mode in ["503", "429", "drop"] {
        let (a, b) = pair();
        let d = a.push_image(
            "app",
            "v8",
            &["--platforms", "linux/amd64,linux/arm64", "--attest"],
        );
        let proxy = FaultProxy::start(&b, 4, mode);
        let out = outcome(&copy(
            &format!("{}/app:v8", a.addr()),
            &format!("127.0.0.1:{}/app:v8", proxy.port),
            &a,
            &b,
        ));
        assert_eq!(out["digest"], d.as_str(), "{mode}");
        assert_eq!(
            b.skopeo_digest("app", "v8").as_deref(),
            Some(d.as_str()),
            "{mode}"
        );
    }
}

#[test]
fn a_401_mid_copy_refreshes_the_ecr_token_once() {
    let src_acct = random_account();
    let dst_acct = random_account();
    let a = Registry::for_account(&src_acct);
    let b = Registry::for_account(&dst_acct);
    let d = a.push_image("shop/api", "v9", &[]);
    // The first request to the destination is refused as if the token had expired.
    let proxy = FaultProxy::start(&b, 1, "401-once");
    let map = format!(
        "{},{}=http://127.0.0.1:{}",
        a.endpoint_entry(),
        b.ecr_host(),
        proxy.port
    );
    let o = ferry(
        &[
            "copy",
            &format!("{}/shop/api:v9", a.ecr_host()),
            &format!("{}/shop/api:v9", b.ecr_host()),
            "--source-role",
            &format!("arn:aws:iam::{src_acct}:role/r"),
            "--target-role",
            &format!("arn:aws:iam::{dst_acct}:role/w"),
            "--output",
            "json",
        ],
        &[("FERRY_REGISTRY_ENDPOINTS", map)],
    );
    let out = outcome(&o);
    assert!(
        stderr(&o).contains("fetching fresh ones and retrying once"),
        "{}",
        stderr(&o)
    );
    assert_eq!(out["digest"], d.as_str());
    assert_eq!(
        b.skopeo_digest("shop/api", "v9").as_deref(),
        Some(d.as_str())
    );

    // Without a way to refresh (plain credentials), a 401 is a clear error.
    let (x, y) = pair();
    x.push_image("app", "v9", &[]);
    let proxy = FaultProxy::start(&y, 1, "401-once");
    let o = copy(
        &format!("{}/app:v9", x.addr()),
        &format!("127.0.0.1:{}/app:v9", proxy.port),
        &x,
        &y,
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("credentials rejected"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn access_denied_names_the_missing_permission_and_repository() {
    let (a, b) = pair();
    a.push_image("app", "v10", &[]);
    let src = FaultProxy::start(&a, 1, "403");
    let o = copy(
        &format!("127.0.0.1:{}/app:v10", src.port),
        &format!("{}/app:v10", b.addr()),
        &a,
        &b,
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("127.0.0.1:{}/app:v10", src.port))
            && err.contains("ecr:BatchGetImage"),
        "{err}"
    );
    let dst = FaultProxy::start(&b, 1, "403");
    let o = copy(
        &format!("{}/app:v10", a.addr()),
        &format!("127.0.0.1:{}/app:v10", dst.port),
        &a,
        &b,
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("ecr:PutImage") || err.contains("ecr:BatchGetImage"),
        "{err}"
    );
    assert!(
        err.contains(&format!("127.0.0.1:{}/app", dst.port)),
        "{err}"
    );
}

#[test]
fn credentials_from_the_docker_config_file() {
    use base64::Engine as _;
    let (a, b) = pair();
    let d = a.push_image("app", "v11", &[]);
    let dir = tempfile::tempdir().unwrap();
    let auth = |r: &Registry| base64::engine::general_purpose::STANDARD.encode(r.creds());
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::json!({"auths": {a.addr(): {"auth": auth(&a)}, b.addr(): {"auth": auth(&b)}}})
            .to_string(),
    )
    .unwrap();
    let o = ferry(
        &[
            "copy",
            "--insecure",
            &format!("{}/app:v11", a.addr()),
            &format!("{}/app:v11", b.addr()),
            "--output",
            "json",
        ],
        &[("DOCKER_CONFIG", dir.path().to_str().unwrap().to_string())],
    );
    assert_eq!(outcome(&o)["digest"], d.as_str());
    assert_eq!(b.skopeo_digest("app", "v11").as_deref(), Some(d.as_str()));
}

/// `ferry copy` with per-side flags and basic credentials for both sides.
fn copy_with(
    args: &[&str],
    src: &str,
    dst: &str,
    a: &Registry,
    b: &Registry,
) -> std::process::Output {
    let mut all = vec!["copy"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[src, dst, "--output", "json"]);
    ferry(
        &all,
        &[
            ("SRC_REGISTRY_USER", a.user.clone()),
            ("SRC_REGISTRY_PASSWORD", a.password.clone()),
            ("DST_REGISTRY_USER", b.user.clone()),
            ("DST_REGISTRY_PASSWORD", b.password.clone()),
        ],
    )
}

#[test]
fn a_lookalike_ecr_host_gets_no_ecr_token() {
    let acct = random_account();
    let a = Registry::for_account(&acct);
    a.push_image("shop/api", "v1", &[]);
    let fake = FakeRegistry::start("passthrough", Some(&a), 0.0);
    let lookalike = format!("{acct}.dkr.ecr.{}.amazonaws.com.attacker.test", region());
    let b = Registry::start("b", "promo", "promo-secret-b");
    let o = ferry(
        &[
            "copy",
            "--source-role",
            &format!("arn:aws:iam::{acct}:role/r"),
            &format!("{lookalike}/shop/api:v1"),
            &format!("{}/shop/api:v1", b.addr()),
            "--insecure",
        ],
        &[
            (
                "FERRY_REGISTRY_ENDPOINTS",
                format!("{lookalike}=http://{}", fake.addr()),
            ),
            ("DST_REGISTRY_USER", b.user.clone()),
            ("DST_REGISTRY_PASSWORD", b.password.clone()),
        ],
    );
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let seen = fake.requests();
    assert!(!seen.is_empty(), "ferry reached the lookalike host");
    assert!(
        seen.iter().all(|r| r["auth"] == false),
        "credentials went to a host that only looks like ECR: {seen:?}"
    );
}

#[test]
fn credentials_never_follow_a_foreign_upload_location() {
    let (a, b) = pair();
    a.push_image("app", "v1", &[]);
    let fake = FakeRegistry::start("foreign-location", Some(&b), 0.0);
    let o = copy_with(
        &["--insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", fake.addr()),
        &a,
        &b,
    );
    let seen = fake.requests();
    let foreign: Vec<&Value> = seen.iter().filter(|r| r["listener"] == "foreign").collect();
    assert!(
        !foreign.is_empty(),
        "the upload went to the foreign Location"
    );
    assert!(
        foreign.iter().all(|r| r["auth"] == false),
        "credentials followed a foreign Location: {foreign:?}"
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("another origin"), "{}", stderr(&o));
}

#[test]
fn a_relative_upload_location_resolves_against_the_request_url() {
    let (a, b) = pair();
    let d = a.push_image("app", "v1", &[]);
    let fake = FakeRegistry::start("relative-location", Some(&b), 0.0);
    let out = outcome(&copy_with(
        &["--insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", fake.addr()),
        &a,
        &b,
    ));
    assert_eq!(out["blobs_copied"], 3, "{out}");
    assert_eq!(b.skopeo_digest("app", "v1").as_deref(), Some(d.as_str()));
}

#[test]
fn basic_credentials_never_go_to_a_foreign_token_realm() {
    let (a, b) = pair();
    a.push_image("app", "v1", &[]);
    let fake = FakeRegistry::start("foreign-realm", Some(&b), 0.0);
    let o = copy_with(
        &["--insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", fake.addr()),
        &a,
        &b,
    );
    let tokens: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r["listener"] == "foreign")
        .collect();
    assert!(!tokens.is_empty(), "the realm was asked for a token");
    assert!(
        tokens.iter().all(|r| r["auth"] == false),
        "Basic credentials went to a plain-http realm on another host: {tokens:?}"
    );
    assert!(!stderr(&o).contains(&b.password));
}

#[test]
fn a_corrupt_source_blob_is_blamed_on_the_source_and_never_committed() {
    let (a, b) = pair();
    a.push_image("app", "v1", &[]);
    let fake = FakeRegistry::start("corrupt-blob", Some(&a), 0.0);
    let o = copy_with(
        &["--insecure"],
        &format!("{}/app:v1", fake.addr()),
        &format!("{}/app:v1", b.addr()),
        &a,
        &b,
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&fake.addr()) && err.contains("corrupt"),
        "the source is blamed: {err}"
    );
    assert!(!err.contains("DIGEST_INVALID"), "{err}");
    let gets: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"].as_str().unwrap().contains("/blobs/"))
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = gets.iter().collect();
    assert_eq!(
        gets.len(),
        unique.len(),
        "a corrupt blob was re-read: {gets:?}"
    );
    let committed = walk_files(&b.data_dir().join("docker/registry/v2/blobs"));
    assert!(
        committed.is_empty(),
        "the destination committed {committed:?}"
    );
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_files(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}

#[test]
fn nested_indexes_arrive_children_first() {
    let (a, b) = pair();
    let d = a.push_image(
        "app",
        "v1",
        &[
            "--platforms",
            "linux/amd64,linux/arm64",
            "--attest",
            "--nested",
        ],
    );
    // Image manifests land slowly: a parent pushed before its children fails every time.
    let fake = FakeRegistry::start("slow-children", Some(&b), 0.0);
    let out = outcome(&copy_with(
        &["--insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", fake.addr()),
        &a,
        &b,
    ));
    assert_eq!(
        out["manifests"], 7,
        "outer + inner index + 4 + 1 images: {out}"
    );
    assert_eq!(b.skopeo_digest("app", "v1").as_deref(), Some(d.as_str()));
}

#[test]
fn already_there_is_proven_and_a_missing_layer_repaired() {
    let (a, b) = pair();
    let d = a.push_image("app", "v1", &["--layers-kb", "64,16,8"]);
    outcome(&copy(
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", b.addr()),
        &a,
        &b,
    ));
    // Someone deletes one layer at the destination: the tag still resolves.
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &b.creds(),
        ])
        .arg(format!("docker://{}/app:v1", b.addr()))
        .output()
        .unwrap();
    let m: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let layer = m["layers"][1]["digest"].as_str().unwrap().to_string();
    let del = Command::new("curl")
        .args(["-fsS", "-X", "DELETE", "-u", &b.creds()])
        .arg(format!("{}/v2/app/blobs/{layer}", b.url()))
        .output()
        .expect("curl");
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );

    let out = outcome(&copy(
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", b.addr()),
        &a,
        &b,
    ));
    assert_eq!(
        out["already_done"], false,
        "a broken image is not 'already there': {out}"
    );
    assert_eq!(out["repaired"], 1, "{out}");
    assert_eq!(out["blobs_copied"], 1, "{out}");
    // skopeo, which we did not write, can read every blob of the image again.
    let dir = tempfile::tempdir().unwrap();
    let pulled = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--src-creds", &b.creds()])
        .arg(format!("docker://{}/app:v1", b.addr()))
        .arg(format!("dir:{}", dir.path().display()))
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(b.skopeo_digest("app", "v1").as_deref(), Some(d.as_str()));
}

#[test]
fn foreign_layers_are_explained() {
    let b = Registry::start("b", "promo", "promo-secret-b");
    let fake = FakeRegistry::start("foreign-layer", None, 0.0);
    let o = copy_with(
        &["--insecure"],
        &format!("{}/win/app:v1", fake.addr()),
        &format!("{}/win/app:v1", b.addr()),
        &b,
        &b,
    );
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("foreign (non-distributable) layer")
            && err.contains("does not hold its bytes"),
        "{err}"
    );
    assert!(err.contains("mcr.microsoft.example"), "{err}");
}

#[test]
fn insecure_is_per_side_and_loopback_only() {
    let (a, b) = pair();
    let d = a.push_image("app", "v1", &[]);
    // Plain http for the source only: the destination is still reached over https.
    let o = copy_with(
        &["--src-insecure"],
        &format!("{}/app:v1", a.addr()),
        "registry.invalid/app:v1",
        &a,
        &b,
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("https://registry.invalid"),
        "{}",
        stderr(&o)
    );
    let o = copy_with(
        &["--dst-insecure"],
        "registry.invalid/app:v1",
        &format!("{}/app:v1", b.addr()),
        &a,
        &b,
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("https://registry.invalid"),
        "{}",
        stderr(&o)
    );
    // A loopback source without --src-insecure is still reached over https.
    let o = copy_with(
        &["--dst-insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", b.addr()),
        &a,
        &b,
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!("https://{}", a.addr())),
        "{}",
        stderr(&o)
    );
    let o = copy_with(
        &["--dst-insecure"],
        &format!("{}/app:v1", a.addr()),
        "10.9.9.9:5000/app:v1",
        &a,
        &b,
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("only for registries on loopback"),
        "{}",
        stderr(&o)
    );
    let out = outcome(&copy_with(
        &["--src-insecure", "--dst-insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", b.addr()),
        &a,
        &b,
    ));
    assert_eq!(out["digest"], d.as_str());
}

/// Runs `cmd` and returns its output and its peak RSS in KiB (getrusage of the child).
fn with_peak_rss(args: &[&str], env: &[(&str, String)]) -> (std::process::Output, u64) {
    let script = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:])\n\
        sys.stderr.write('PEAK_RSS_KIB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(r.returncode)";
    let mut cmd = ferry_command(args, env);
    let mut py = Command::new("python3");
    py.arg("-c").arg(script).arg(cmd.get_program());
    py.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => py.env(k, v),
            None => py.env_remove(k),
        };
    }
    let _ = &mut cmd;
    let o = py.output().expect("python3");
    let err = stderr(&o);
    let kib = err
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_RSS_KIB="))
        .unwrap_or_else(|| panic!("no peak RSS: {err}"))
        .trim()
        .parse()
        .unwrap();
    (o, kib)
}

#[test]
fn endless_and_huge_bodies_are_cut_off_with_memory_bounded() {
    let b = Registry::start("b", "promo", "promo-secret-b");
    for (mode, expect) in [
        ("endless-manifest", "over the limit"),
        ("huge-manifest", "over the limit"),
        ("endless-error", "registry answered 400"),
    ] {
        let fake = FakeRegistry::start(mode, None, 0.0);
        let started = std::time::Instant::now();
        let (o, kib) = with_peak_rss(
            &[
                "copy",
                "--insecure",
                &format!("{}/app:v1", fake.addr()),
                &format!("{}/app:v1", b.addr()),
            ],
            &[],
        );
        assert_ne!(o.status.code(), Some(0), "{mode}");
        assert!(stderr(&o).contains(expect), "{mode}: {}", stderr(&o));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{mode}: took {:?}",
            started.elapsed()
        );
        assert!(kib < 64 * 1024, "{mode}: peak RSS {kib} KiB");
    }
}

#[test]
fn retries_outlast_a_short_outage_and_honour_retry_after() {
    let (a, b) = pair();
    let d = a.push_image("app", "v1", &[]);
    // 3 s of 503s: the old schedule gave up after about 1.4 s.
    let fake = FakeRegistry::start("unavailable", Some(&b), 3.0);
    let out = outcome(&copy_with(
        &["--insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", fake.addr()),
        &a,
        &b,
    ));
    assert_eq!(out["digest"], d.as_str());

    let fake = FakeRegistry::start("retry-after", Some(&b), 2.0);
    let out = outcome(&copy_with(
        &["--insecure"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v2", fake.addr()),
        &a,
        &b,
    ));
    assert_eq!(out["digest"], d.as_str());
    let seen = fake.requests();
    // The fake logs which request it throttled: the requests of one round arrive together, so
    // the first one logged is not always the one that got the 429.
    let throttled = seen
        .iter()
        .find(|r| r["throttled"] == true)
        .expect("one request was throttled");
    let first = throttled["t"].as_f64().unwrap();
    let second = seen
        .iter()
        .filter(|r| r["throttled"] != true)
        .filter(|r| r["path"] == throttled["path"] && r["method"] == throttled["method"])
        .map(|r| r["t"].as_f64().unwrap())
        .find(|t| *t > first)
        .expect("the throttled request was repeated");
    assert!(
        second - first >= 1.9,
        "Retry-After: 2 honoured: {}",
        second - first
    );
}

#[test]
fn secrets_never_reach_the_logs_at_debug_or_trace() {
    use base64::Engine as _;
    let src_acct = random_account();
    let dst_acct = random_account();
    let a = Registry::for_account(&src_acct);
    let b = Registry::for_account(&dst_acct);
    a.push_image("shop/api", "v1", &[]);
    for level in ["debug", "trace"] {
        let o = ferry(
            &[
                "copy",
                &format!("{}/shop/api:v1", a.ecr_host()),
                &format!("{}/shop/api:v1-{level}", b.ecr_host()),
                "--source-role",
                &format!("arn:aws:iam::{src_acct}:role/reader"),
                "--target-role",
                &format!("arn:aws:iam::{dst_acct}:role/writer"),
            ],
            &[
                (
                    "FERRY_REGISTRY_ENDPOINTS",
                    format!("{},{}", a.endpoint_entry(), b.endpoint_entry()),
                ),
                ("FERRY_LOG", level.into()),
            ],
        );
        assert_exit(&o, 0);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains("GET http://127.0.0.1:") || level == "debug",
            "{level}: ferry's own trace lines are there: {all}"
        );
        for reg in [&a, &b] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(reg.creds());
            for secret in [reg.password.as_str(), b64.as_str()] {
                assert!(
                    !all.contains(secret),
                    "{level}: a registry credential leaked"
                );
            }
        }
        // The world's AWS secret key, and what moto's STS hands out.
        for secret in [
            "ferry-test",
            "SecretAccessKey",
            "SessionToken",
            "FQoGZXIvYXdz",
        ] {
            assert!(!all.contains(secret), "{level}: {secret} leaked");
        }
    }
}

#[test]
fn a_panic_exits_5_and_says_it_is_a_bug() {
    let (a, b) = pair();
    a.push_image("app", "v1", &[]);
    let o = ferry(
        &[
            "copy",
            "--insecure",
            &format!("{}/app:v1", a.addr()),
            &format!("{}/app:v1", b.addr()),
        ],
        &[
            ("FERRY_TEST_PANIC", "copying".into()),
            ("SRC_REGISTRY_USER", a.user.clone()),
            ("SRC_REGISTRY_PASSWORD", a.password.clone()),
        ],
    );
    assert_exit(&o, 5);
    let err = stderr(&o);
    assert!(err.contains("this is a bug"), "{err}");
    assert!(err.contains("in flight: copying"), "{err}");
    assert!(!err.contains("stack backtrace"), "{err}");
}

/// The run deadline stops a copy that cannot finish (a registry unavailable for a minute,
/// where the retry policy alone would go on for 30 s), saying what it leaves behind.
#[test]
fn the_run_deadline_stops_a_copy_and_says_what_it_leaves() {
    let (a, b) = pair();
    a.push_image("app", "v1", &[]);
    let fake = FakeRegistry::start("unavailable", Some(&b), 60.0);
    let o = copy_with(
        &["--insecure", "--deadline", "3s"],
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", fake.addr()),
        &a,
        &b,
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("stopped by the run deadline (3s) during the copy")
            && err.contains("the tag is written last")
            && err.contains("hint: re-run the copy"),
        "{err}"
    );
    assert!(!fake.requests().is_empty(), "the copy reached the registry");
    assert_eq!(b.skopeo_digest("app", "v1"), None);
}

/// A manifest whose layer "digest" is a path (`sha256:../../../../v2/other/manifests/latest`)
/// is refused as invalid before the digest goes near a URL: no request leaves the image's own
/// paths.
#[test]
fn a_digest_that_is_a_path_never_reaches_a_url() {
    let b = Registry::start("b", "promo", "promo-secret-b");
    let fake = FakeRegistry::start("path-digest", None, 0.0);
    let o = copy_with(
        &["--insecure"],
        &format!("{}/app:v1", fake.addr()),
        &format!("{}/app:v1", b.addr()),
        &b,
        &b,
    );
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_exit(&o, 1);
    assert!(
        err.contains("\"sha256:../../../../v2/other/manifests/latest\" is not a digest"),
        "the bad digest is named: {err}"
    );
    let seen = fake.requests();
    assert!(!seen.is_empty());
    for r in &seen {
        let path = r["path"].as_str().unwrap_or_default();
        assert!(
            !path.contains("..") && !path.contains("/v2/other/"),
            "ferry requested {path}: {seen:?}"
        );
    }
    assert_eq!(b.skopeo_digest("app", "v1"), None);
}
