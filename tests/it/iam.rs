//! `ferry iam-policy` proven against an IAM that says no: a moto server of this test's own with
//! IAM enforcement on (signatures and identity policies checked on every STS and ECR call).
//! A production deploy (promotion from staging included) succeeds with exactly the generated
//! policies attached, while the caller may assume production's role alone (the promotion
//! reads staging with production's role, through staging's repository policy, so a
//! production job never holds the staging role), and fails naming the missing action when a
//! statement that guards an STS/ECR call is removed.
//!
//! What this does not prove, honestly: ECS calls go to the rollout simulator, which does not
//! enforce IAM, and image bytes go to `docker-registry`, which knows nothing of ECR's IAM
//! actions. For ECS the test checks instead that every operation the simulator saw ferry call
//! is granted by the generated role policy. moto also ignores `Resource` for ECR (it compares a
//! statement's resources against `*`), so the ECR repository statements are checked by the unit
//! tests of `ferry::iam`, not here; and the registries do not evaluate ECR repository
//! policies, so the staging repository policy is checked by those unit tests (exactly
//! production's role, pull actions only) and its use here is shown by production reading
//! staging without the staging role.

use std::process::{Child, Command, Stdio};

use crate::common::*;
use serde_json::Value;

/// A moto server for this test alone: enforcement is global to a moto process.
struct Moto {
    url: String,
    child: Child,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env_remove("MOTO_ACCOUNT_ID")
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("python3 -m moto.server (moto[server]): run scripts/setup");
        wait_for_port(port, "moto server");
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _log: log,
        }
    }

    /// tests/fixtures/iam_world.py against this server; its stdout.
    fn iam(&self, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(fixture("iam_world.py"))
            .arg(&self.url)
            .args(args)
            .output()
            .expect("python3 with boto3: run scripts/setup");
        assert!(
            out.status.success(),
            "iam_world.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `doc` to a file in `dir` and returns its path.
fn doc_file(dir: &std::path::Path, name: &str, doc: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    p.to_str().unwrap().to_string()
}

/// `doc` with its `RecordsSign` statement on `"*"`: moto compares a KMS statement's resources
/// against `*` only (as it does for ECR), so the key ARN the statement names is checked by the
/// unit tests of `ferry::iam` instead.
fn moto_kms(doc: &Value) -> Value {
    let mut d = doc.clone();
    for st in d["Statement"].as_array_mut().unwrap() {
        if st["Sid"] == "RecordsSign" {
            st["Resource"] = Value::from("*");
        }
    }
    d
}

/// `doc` without the statement `sid` (which must be there).
fn without(doc: &Value, sid: &str) -> Value {
    let mut d = doc.clone();
    let st = d["Statement"].as_array_mut().unwrap();
    let before = st.len();
    st.retain(|s| s["Sid"] != sid);
    assert_eq!(st.len(), before - 1, "no statement {sid} in {doc:#}");
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn a_production_deploy_needs_exactly_the_generated_policies() {
    let moto = Moto::start();
    let mut spec = EnvSpec::new();
    // Staging signs its records (kms:Sign under enforcement); production verifies them.
    let key: Value = serde_json::from_str(&moto.iam(&["key", &spec.staging_account])).unwrap();
    spec.staging_extra = format!(
        "[records]\nsigning_key = \"{}\"\npublic_key = \"{}\"\n",
        key["arn"].as_str().unwrap(),
        key["pem"].as_str().unwrap()
    );
    let sim = EcsSim::start();
    let staging_cluster = format!("{}-staging", spec.cluster);
    let prod_cluster = format!("{}-production", spec.cluster);
    spec.prod_smoke = Some(sim.health_url(&prod_cluster, &spec.service));
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    let prod = Registry::for_account(&spec.prod_account);
    let prod_image = |d: &str| format!("{}/{}@{d}", prod.ecr_host(), spec.repo);
    let staging_image = |d: &str| format!("{}/{}@{d}", staging.ecr_host(), spec.repo);

    // Production runs v1.9.0; staging verified v2.0.0-rc.1 and runs it.
    let base = prod.push_image(&spec.repo, "v1.9.0", &["--seed", "19"]);
    sim.image(&prod_image(&base), "1.9.0", "healthy").await;
    sim.service(
        &prod_cluster,
        &spec.service,
        &spec.container,
        &prod_image(&base),
    )
    .await;
    let rc = staging.push_image(&spec.repo, "v2.0.0-rc.1", &["--seed", "201"]);
    sim.image(&staging_image(&rc), "2.0.0-rc.1", "healthy")
        .await;
    sim.image(&prod_image(&rc), "2.0.0-rc.1", "healthy").await;
    sim.service(
        &staging_cluster,
        &spec.service,
        &spec.container,
        &staging_image(&rc),
    )
    .await;
    // The next release's candidate, for the cases below that must fail before changing anything.
    let rc21 = staging.push_image(&spec.repo, "v2.1.0-rc.1", &["--seed", "211"]);
    sim.image(&staging_image(&rc21), "2.1.0-rc.1", "healthy")
        .await;
    sim.image(&prod_image(&rc21), "2.1.0-rc.1", "healthy").await;

    let env_dir = dir.path().to_str().unwrap();
    let world = |extra: &[(&'static str, String)]| {
        let mut v = vec![
            ("AWS_ENDPOINT_URL", moto.url.clone()),
            ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
            (
                "FERRY_REGISTRY_ENDPOINTS",
                format!("{},{}", staging.endpoint_entry(), prod.endpoint_entry()),
            ),
            ("AWS_MAX_ATTEMPTS", "1".into()),
        ];
        v.extend_from_slice(extra);
        v
    };

    // The policies, from the files and the live task definitions (read before enforcement).
    let o = ferry(
        &[
            "iam-policy",
            "--environments",
            env_dir,
            "--repository",
            "acme/shop",
            "--output",
            "json",
        ],
        &world(&[]),
    );
    assert_exit(&o, 0);
    let policies: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let of = |env: &str| {
        policies["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["environment"] == env)
            .unwrap_or_else(|| panic!("no {env} in {policies:#}"))
            .clone()
    };
    let (prod_p, staging_p) = (of("production"), of("staging"));
    assert!(
        !stdout(&o).contains("<TASK AND EXECUTION ROLES"),
        "the live roles were read"
    );
    assert_eq!(
        prod_p["role_policy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "PassTaskRoles")
            .unwrap()["Resource"],
        serde_json::json!(["arn:aws:iam::123456789012:role/exec"]),
        "iam:PassRole on exactly the execution role the live task definition uses"
    );

    // IAM as the generated documents say: each role has its permissions policy (and trust
    // policy) and nothing else; the CI user has the caller policy of the environment it
    // deploys, which names that environment's role alone.
    let tmp = tempfile::tempdir().unwrap();
    let caller_file = doc_file(tmp.path(), "caller.json", &staging_p["caller_policy"]);
    let key: Value = serde_json::from_str(&moto.iam(&["caller", &caller_file])).unwrap();
    let put_role = |acct: &str, p: &Value, role_policy: &Value| {
        let policy = doc_file(tmp.path(), &format!("{acct}-role.json"), role_policy);
        let trust = doc_file(
            tmp.path(),
            &format!("{acct}-trust.json"),
            &p["trust_policy"],
        );
        moto.iam(&["role", acct, "ferry-deploy", &policy, &trust]);
    };
    put_role(
        &spec.staging_account,
        &staging_p,
        &moto_kms(&staging_p["role_policy"]),
    );
    put_role(&spec.prod_account, &prod_p, &prod_p["role_policy"]);
    let creds = [
        (
            "AWS_ACCESS_KEY_ID",
            key["AccessKeyId"].as_str().unwrap().to_string(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            key["SecretAccessKey"].as_str().unwrap().to_string(),
        ),
    ];
    // Staging's records of both candidates (the promotion gate reads them), written with the
    // generated staging policy in force.
    moto.iam(&["enforce", "on"]);
    for rc_tag in ["v2.0.0-rc.1", "v2.1.0-rc.1"] {
        let o = ferry(
            &["deploy", "--environments", env_dir, "--tag", rc_tag],
            &world(&creds),
        );
        assert_exit(&o, 0);
    }
    // From here on the CI user deploys production: it may assume production's role, and
    // no other. The promotion reads staging with production's role.
    let set_caller = |doc: &Value| {
        moto.iam(&["enforce", "off"]);
        let f = doc_file(tmp.path(), "caller-now.json", doc);
        moto.iam(&["user-policy", &f]);
        moto.iam(&["enforce", "on"]);
    };
    set_caller(&prod_p["caller_policy"]);
    assert_eq!(
        prod_p["caller_policy"]["Statement"][0]["Resource"],
        serde_json::json!([format!(
            "arn:aws:iam::{}:role/ferry-deploy",
            spec.prod_account
        )]),
        "a production deploy assumes production's role alone"
    );
    assert_eq!(
        staging_p["repository_policy"]["Statement"][0]["Principal"]["AWS"],
        serde_json::json!([format!(
            "arn:aws:iam::{}:role/ferry-deploy",
            spec.prod_account
        )]),
        "staging's repository lets production's role pull"
    );

    // Enforcement really is on: an unknown key is refused.
    let o = ferry(
        &[
            "plan",
            "--environments",
            env_dir,
            "--tag",
            "v2.0.0",
            "--output",
            "json",
        ],
        &world(&[
            ("AWS_ACCESS_KEY_ID", "AKIANOTAKEY00000000".into()),
            ("AWS_SECRET_ACCESS_KEY", "nope".into()),
        ]),
    );
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    assert!(
        plan["source"]["digest"].is_null(),
        "an unknown key got in: {}\n{}",
        stdout(&o),
        stderr(&o)
    );

    // With exactly the generated policies: the production deploy, promotion included.
    let deploy = |tag: &str| {
        ferry(
            &[
                "deploy",
                "--environments",
                env_dir,
                "--tag",
                tag,
                "--output",
                "json",
            ],
            &world(&creds),
        )
    };
    let o = deploy("v2.0.0");
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["outcome"], "deployed");
    assert_eq!(report["promotion"]["digest"], rc.as_str());
    assert_eq!(
        prod.skopeo_digest(&spec.repo, "v2.0.0").as_deref(),
        Some(rc.as_str())
    );

    // Every ECS operation ferry called (the simulator counts them) is granted by the role
    // policy, since the simulator itself does not enforce IAM.
    let calls = sim.get("/_sim/calls").await;
    let granted = ferry::iam::actions(&prod_p["role_policy"]);
    let called: Vec<String> = calls
        .as_object()
        .unwrap()
        .keys()
        .filter(|op| !op.contains(':'))
        .map(|op| format!("ecs:{op}"))
        .collect();
    // The test's own setup calls (CreateCluster, CreateService...) are not ferry's.
    let setup = ["ecs:CreateCluster", "ecs:CreateService"];
    for op in called.iter().filter(|op| !setup.contains(&op.as_str())) {
        assert!(
            granted.contains(op),
            "ferry called {op}, which the generated policy does not grant: {granted:?}"
        );
    }
    assert!(called.contains(&"ecs:UpdateService".to_string()), "{calls}");

    // Take away one grant at a time: the deploy fails and says which action was refused.
    // (v2.1.0 is new to production, so every STS/ECR call of a promotion happens; a re-run of
    // v2.0.0 would take its digest from production's own record and never touch staging.)
    // The caller's one grant is replaced by staging's (the wrong role).
    let cases: [(&str, Value, &str); 2] = [
        (
            "caller",
            staging_p["caller_policy"].clone(),
            "sts:AssumeRole",
        ),
        (
            "production",
            without(&prod_p["role_policy"], "EcrLogin"),
            "ecr:GetAuthorizationToken",
        ),
    ];
    let restore = |whose: &str, doc: &Value| {
        moto.iam(&["enforce", "off"]);
        match whose {
            "caller" => {
                let f = doc_file(tmp.path(), "caller-now.json", doc);
                moto.iam(&["user-policy", &f]);
            }
            "staging" => put_role(&spec.staging_account, &staging_p, doc),
            _ => put_role(&spec.prod_account, &prod_p, doc),
        }
        moto.iam(&["enforce", "on"]);
    };
    for (whose, cut, action) in &cases {
        restore(whose, cut);
        let o = deploy("v2.1.0");
        let all = format!("{}\n{}", stdout(&o), stderr(&o));
        assert_ne!(
            o.status.code(),
            Some(0),
            "{whose} with {cut} still deployed:\n{all}"
        );
        assert!(
            all.contains(&format!("not authorized to perform: {action}")),
            "{whose} with {cut}: the failure does not name {action}:\n{all}"
        );
        for secret in [&creds[1].1, &staging.password, &prod.password] {
            assert!(!all.contains(secret.as_str()), "a secret leaked:\n{all}");
        }
        // Put the grant back before the next case.
        match *whose {
            "caller" => restore(whose, &prod_p["caller_policy"]),
            "staging" => restore(whose, &staging_p["role_policy"]),
            _ => restore(whose, &prod_p["role_policy"]),
        }
    }

    // Staging's role is not needed at all: with no ECR login left in it, the promotion of
    // v2.1.0 still succeeds, because production's role reads staging.
    restore("staging", &without(&staging_p["role_policy"], "EcrLogin"));
    let o = deploy("v2.1.0");
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["promotion"]["digest"], rc21.as_str(), "{report}");
}

/// The records key's grants under moto's IAM enforcement: the deploy role signs with exactly
/// the generated role policy; the CI role that pushes release candidates to staging's
/// repository (push rights, nothing about the key) cannot sign, so it cannot forge a record.
#[tokio::test(flavor = "multi_thread")]
async fn the_ci_role_that_pushes_images_cannot_sign_records() {
    let moto = Moto::start();
    let mut spec = EnvSpec::new();
    let key: Value = serde_json::from_str(&moto.iam(&["key", &spec.staging_account])).unwrap();
    let arn = key["arn"].as_str().unwrap().to_string();
    spec.staging_extra = format!(
        "[records]\nsigning_key = \"{arn}\"\npublic_key = \"{}\"\n",
        key["pem"].as_str().unwrap()
    );
    let dir = spec.write();
    let o = ferry(
        &[
            "iam-policy",
            "--environments",
            dir.path().to_str().unwrap(),
            "--offline",
            "--output",
            "json",
        ],
        &[("AWS_ENDPOINT_URL", moto.url.clone())],
    );
    assert_exit(&o, 0);
    let policies: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let staging = policies["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["environment"] == "staging")
        .unwrap()
        .clone();
    assert!(staging["key_policy"]["Statement"].is_array(), "{staging:#}");
    let tmp = tempfile::tempdir().unwrap();
    let anyone = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
    let trust = doc_file(tmp.path(), "trust.json", &anyone);
    let deploy = doc_file(
        tmp.path(),
        "deploy.json",
        &moto_kms(&staging["role_policy"]),
    );
    moto.iam(&[
        "role",
        &spec.staging_account,
        "ferry-deploy",
        &deploy,
        &trust,
    ]);
    // CI: pushes release candidates to staging's repository, and may do anything else in ECR.
    let ci_policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["ecr:*"], "Resource": "*"}]});
    let ci = doc_file(tmp.path(), "ci.json", &ci_policy);
    moto.iam(&["role", &spec.staging_account, "ci-push", &ci, &trust]);
    let assume = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "sts:AssumeRole", "Resource": "*"}]});
    let caller = doc_file(tmp.path(), "caller.json", &assume);
    let creds = moto.iam(&["caller", &caller]);
    let creds_file = tmp.path().join("creds.json");
    std::fs::write(&creds_file, creds).unwrap();
    let creds_file = creds_file.to_str().unwrap();
    moto.iam(&["enforce", "on"]);
    let try_sign = |role: &str| {
        moto.iam(&["try-sign", &spec.staging_account, role, &arn, creds_file])
            .trim()
            .to_string()
    };
    assert_eq!(try_sign("ferry-deploy"), "signed");
    let refused = try_sign("ci-push");
    assert!(refused.contains("AccessDenied"), "CI signed: {refused}");
    // Without the generated RecordsSign statement, the deploy role cannot sign either.
    moto.iam(&["enforce", "off"]);
    let unsigned = doc_file(
        tmp.path(),
        "deploy-unsigned.json",
        &without(&staging["role_policy"], "RecordsSign"),
    );
    moto.iam(&[
        "role",
        &spec.staging_account,
        "ferry-deploy",
        &unsigned,
        &trust,
    ]);
    moto.iam(&["enforce", "on"]);
    assert!(try_sign("ferry-deploy").contains("AccessDenied"));
}
