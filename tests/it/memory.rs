//! The release memory, one CLI-level test per rule of issue 8: records next to the image
//! (read back by ORAS on both registry paths), the promotion gate (failed, never deployed,
//! moved, soak, `--from`), rollback by re-run after the staging rc expired, downgrade and
//! delayed-run refusals, simultaneous runs, plan = deploy, status history and drift.
//!
//! Staging's registry serves the referrers API (tests/referrers_proxy in front of
//! docker-registry, as ECR does); production's is a plain docker-registry 2.8, so ferry takes
//! the spec's fallback tag there. Both are real registries.

use std::process::Output;

use crate::common::*;
use serde_json::Value;

pub struct World {
    pub spec: EnvSpec,
    pub dir: tempfile::TempDir,
    pub staging: Registry,
    pub prod: Registry,
    pub sim: EcsSim,
    pub staging_cluster: String,
    pub prod_cluster: String,
}

impl World {
    pub async fn new(soak_minutes: Option<u64>) -> World {
        let mut spec = EnvSpec::new();
        let sim = EcsSim::start();
        let staging_cluster = format!("{}-staging", spec.cluster);
        let prod_cluster = format!("{}-production", spec.cluster);
        spec.staging_smoke = Some(sim.health_url(&staging_cluster, &spec.service));
        spec.prod_smoke = Some(sim.health_url(&prod_cluster, &spec.service));
        spec.soak_minutes = soak_minutes;
        let dir = spec.write();
        let staging = Registry::with_referrers(&spec.staging_account);
        let prod = Registry::for_account(&spec.prod_account);
        let w = World {
            spec,
            dir,
            staging,
            prod,
            sim,
            staging_cluster,
            prod_cluster,
        };
        // Both environments run a baseline nobody recorded (deployed before ferry remembered).
        let sbase = w
            .staging
            .push_image(&w.spec.repo, "v0.9.0-rc.1", &["--seed", "90"]);
        let pbase = w.prod.push_image(&w.spec.repo, "v0.9.0", &["--seed", "90"]);
        let simage = w.staging_image(&sbase);
        let pimage = w.prod_image(&pbase);
        w.sim.image(&simage, "0.9.0-rc.1", "healthy").await;
        w.sim.image(&pimage, "0.9.0-rc.1", "healthy").await;
        w.sim
            .service(
                &w.staging_cluster,
                &w.spec.service,
                &w.spec.container,
                &simage,
            )
            .await;
        w.sim
            .service(&w.prod_cluster, &w.spec.service, &w.spec.container, &pimage)
            .await;
        w
    }

    pub fn staging_image(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.staging.ecr_host(), self.spec.repo)
    }

    pub fn prod_image(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.prod.ecr_host(), self.spec.repo)
    }

    /// Pushes a release candidate to staging; `staging`/`production` say how it behaves there.
    pub async fn rc(&self, tag: &str, seed: &str, staging: &str, production: &str) -> String {
        let digest = self
            .staging
            .push_image(&self.spec.repo, tag, &["--seed", seed]);
        let version = tag.trim_start_matches('v');
        self.sim
            .image(&self.staging_image(&digest), version, staging)
            .await;
        self.sim
            .image(&self.prod_image(&digest), version, production)
            .await;
        digest
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "FERRY_REGISTRY_ENDPOINTS",
                format!(
                    "{},{}",
                    self.staging.endpoint_entry(),
                    self.prod.endpoint_entry()
                ),
            ),
            ("AWS_ENDPOINT_URL_ECS", self.sim.endpoint.clone()),
            ("AWS_MAX_ATTEMPTS", "3".into()),
        ]
    }

    pub fn run(
        &self,
        cmd: &str,
        tag: &str,
        extra: &[&str],
        env: &[(&'static str, String)],
    ) -> Output {
        let mut args = vec![cmd, "--environments", self.dir.path().to_str().unwrap()];
        if !tag.is_empty() {
            args.extend(["--tag", tag]);
        }
        args.extend_from_slice(extra);
        let mut e = self.env();
        e.extend_from_slice(env);
        ferry(&args, &e)
    }

    pub fn deploy(&self, tag: &str, extra: &[&str]) -> Output {
        let mut x = vec!["--output", "json"];
        x.extend_from_slice(extra);
        self.run("deploy", tag, &x, &[])
    }

    pub fn plan(&self, tag: &str, extra: &[&str]) -> Output {
        let mut x = vec!["--output", "json"];
        x.extend_from_slice(extra);
        self.run("plan", tag, &x, &[])
    }

    /// Deploys and asserts the exit code; returns the JSON report.
    pub fn deploy_ok(&self, tag: &str, code: i32) -> Value {
        let o = self.deploy(tag, &[]);
        assert_exit(&o, code);
        serde_json::from_str(&stdout(&o)).unwrap()
    }

    pub async fn prod_version(&self) -> String {
        let v: Value = reqwest::get(self.sim.health_url(&self.prod_cluster, &self.spec.service))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["version"].as_str().unwrap_or_default().to_string()
    }
}

/// Asserts `plan` refuses exactly as `deploy` does: same exit code, same message.
#[track_caller]
fn plan_predicts(w: &World, tag: &str, extra: &[&str], deploy: &Output, code: i32) {
    assert_exit(deploy, code);
    let p = w.plan(tag, extra);
    assert_exit(&p, code);
    // Numbers aside (a soak refusal says how long the candidate has been live, which moves
    // between the two runs), the refusal is the same sentence.
    let first = |o: &Output| {
        stderr(o)
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default()
            .replace(|c: char| c.is_ascii_digit(), "#")
    };
    assert!(!first(deploy).is_empty(), "{}", stderr(deploy));
    assert_eq!(first(&p), first(deploy), "plan and deploy refuse alike");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_written_next_to_the_image_and_read_back_by_oras_on_both_registry_paths() {
    let w = World::new(None).await;
    let rc1 = w.rc("v1.0.0-rc.1", "101", "healthy", "healthy").await;
    let staged = w.deploy_ok("v1.0.0-rc.1", 0);
    assert_eq!(staged["record"]["referrers"], "api");
    let released = w.deploy_ok("v1.0.0", 0);
    assert_eq!(released["record"]["referrers"], "fallback-tag");
    assert_eq!(released["promotion"]["digest"], rc1.as_str());

    // Staging: the registry's referrers API, read by ORAS.
    let (path, recs) = w.staging.oras_records(&w.spec.repo, &rc1);
    assert_eq!(path, "api");
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(
        (
            &r["environment"],
            &r["tag"],
            &r["digest"],
            &r["result"],
            &r["kind"]
        ),
        (
            &Value::from("staging"),
            &Value::from("v1.0.0-rc.1"),
            &Value::from(rc1.as_str()),
            &Value::from("succeeded"),
            &Value::from("deploy")
        )
    );
    assert!(r["services"][0]["before"].as_str().unwrap().ends_with(":1"));
    assert!(r["services"][0]["after"].as_str().unwrap().ends_with(":2"));
    assert_eq!(r["smoke"][0]["ok"], true);
    assert_eq!(r["ferry_version"], env!("CARGO_PKG_VERSION"));
    assert!(r["started_at"].as_str().unwrap() <= r["ended_at"].as_str().unwrap());

    // Production: the fallback tag sha256-<hex>, read by ORAS; it carries staging's record.
    let (path, recs) = w.prod.oras_records(&w.spec.repo, &rc1);
    assert_eq!(path, "fallback");
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["environment"], "production");
    assert_eq!(recs[0]["tag"], "v1.0.0");
    assert_eq!(recs[0]["promoted_from"]["tag"], "v1.0.0-rc.1");
    assert_eq!(recs[0]["promoted_from"]["environment"], "staging");
    assert_eq!(recs[0]["promoted_from"]["_manifest"], Value::Null);
    assert_eq!(
        recs[0]["promoted_from"]["run"], r["run"],
        "production's record embeds the very staging record"
    );

    // Immutable: a second outcome is a second record, the first is untouched.
    w.deploy_ok("v1.0.0-rc.1", 0);
    let (_, again) = w.staging.oras_records(&w.spec.repo, &rc1);
    assert_eq!(again.len(), 2);
    assert!(again
        .iter()
        .any(|x| x["_manifest"] == r["_manifest"] && x["run"] == r["run"]));
    // Visible with standard tools: one tag per record.
    let tags = std::process::Command::new("skopeo")
        .args([
            "list-tags",
            "--tls-verify=false",
            "--creds",
            &w.staging.creds(),
        ])
        .arg(format!("docker://{}/{}", w.staging.addr(), w.spec.repo))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&tags.stdout);
    assert_eq!(
        listed.matches("ferry-record_staging_v1.0.0-rc.1_").count(),
        2,
        "{listed}"
    );
    assert!(
        !listed.contains("ferry-claim"),
        "claims are removed after the run: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_refuses_a_failed_highest_rc_and_from_promotes_a_verified_one() {
    let w = World::new(None).await;
    let rc1 = w.rc("v1.1.0-rc.1", "111", "healthy", "healthy").await;
    let rc2 = w.rc("v1.1.0-rc.2", "112", "crash", "crash").await;
    w.deploy_ok("v1.1.0-rc.1", 0);
    w.deploy_ok("v1.1.0-rc.2", 4);

    let o = w.deploy("v1.1.0", &[]);
    plan_predicts(&w, "v1.1.0", &[], &o, 3);
    let err = stderr(&o);
    assert!(err.contains("v1.1.0-rc.2, failed (rolled-back)"), "{err}");
    for needle in [rc1.as_str(), rc2.as_str(), "passed", "--from v1.1.0-rc.N"] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
    assert_eq!(
        w.prod.skopeo_digest(&w.spec.repo, "v1.1.0"),
        None,
        "nothing promoted"
    );

    // --from must name a candidate that passed.
    let o = w.deploy("v1.1.0", &["--from", "v1.1.0-rc.2"]);
    plan_predicts(&w, "v1.1.0", &["--from", "v1.1.0-rc.2"], &o, 3);
    let report = w.deploy("v1.1.0", &["--from", "v1.1.0-rc.1"]);
    assert_exit(&report, 0);
    let report: Value = serde_json::from_str(&stdout(&report)).unwrap();
    assert_eq!(report["promotion"]["digest"], rc1.as_str());
    assert_eq!(
        w.prod.skopeo_digest(&w.spec.repo, "v1.1.0").as_deref(),
        Some(rc1.as_str())
    );
    assert_eq!(w.prod_version().await, "1.1.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rc_never_deployed_to_staging_is_not_promoted() {
    let w = World::new(None).await;
    w.rc("v2.0.0-rc.1", "201", "healthy", "healthy").await;
    w.deploy_ok("v2.0.0-rc.1", 0);
    w.rc("v2.0.0-rc.2", "202", "healthy", "healthy").await;
    let o = w.deploy("v2.0.0", &[]);
    plan_predicts(&w, "v2.0.0", &[], &o, 3);
    assert!(
        stderr(&o).contains("v2.0.0-rc.2, never deployed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.prod.skopeo_digest(&w.spec.repo, "v2.0.0"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_rc_tag_is_reported_and_refused() {
    let w = World::new(None).await;
    let verified = w.rc("v3.0.0-rc.1", "301", "healthy", "healthy").await;
    w.deploy_ok("v3.0.0-rc.1", 0);
    // CI re-pushes other bytes under the same tag.
    let moved = w.rc("v3.0.0-rc.1", "399", "healthy", "healthy").await;
    assert_ne!(moved, verified);
    let o = w.deploy("v3.0.0", &[]);
    plan_predicts(&w, "v3.0.0", &[], &o, 3);
    let err = stderr(&o);
    assert!(err.contains("tag moved after it passed"), "{err}");
    assert!(err.contains(&verified) && err.contains(&moved), "{err}");
    assert_eq!(w.prod.skopeo_digest(&w.spec.repo, "v3.0.0"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_production_tag_with_other_bytes_is_never_moved() {
    let w = World::new(None).await;
    let verified = w.rc("v3.0.0-rc.1", "301", "healthy", "healthy").await;
    w.deploy_ok("v3.0.0-rc.1", 0);
    let moved = w
        .prod
        .push_image(&w.spec.repo, "v3.0.0", &["--seed", "999"]);
    let o = w.deploy("v3.0.0", &[]);
    plan_predicts(&w, "v3.0.0", &[], &o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&moved) && err.contains("refusing to move the tag"),
        "{err}"
    );
    assert!(err.contains(&verified), "{err}");
    assert_eq!(
        w.prod.skopeo_digest(&w.spec.repo, "v3.0.0").as_deref(),
        Some(moved.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_must_soak_in_staging() {
    let w = World::new(Some(30)).await;
    w.rc("v4.0.0-rc.1", "401", "healthy", "healthy").await;
    w.deploy_ok("v4.0.0-rc.1", 0);
    let o = w.deploy("v4.0.0", &[]);
    plan_predicts(&w, "v4.0.0", &[], &o, 3);
    assert!(
        stderr(&o).contains("of the 30 minutes promote.soak_minutes asks"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_by_rerun_works_after_the_staging_rc_expired() {
    let w = World::new(None).await;
    let rc100 = w.rc("v1.0.0-rc.1", "100", "healthy", "healthy").await;
    w.deploy_ok("v1.0.0-rc.1", 0);
    w.deploy_ok("v1.0.0", 0);
    w.rc("v1.1.0-rc.1", "110", "healthy", "healthy").await;
    w.deploy_ok("v1.1.0-rc.1", 0);
    w.deploy_ok("v1.1.0", 0);
    assert_eq!(w.prod_version().await, "1.1.0-rc.1");

    // A lifecycle rule expires staging's old candidate.
    w.staging.expire(&w.spec.repo, "v1.0.0-rc.1");
    assert_eq!(w.staging.skopeo_digest(&w.spec.repo, "v1.0.0-rc.1"), None);

    let p = w.plan("v1.0.0", &[]);
    assert_exit(&p, 0);
    let plan: Value = serde_json::from_str(&stdout(&p)).unwrap();
    assert_eq!(plan["kind"], "rollback");
    assert_eq!(plan["live_release"], "v1.1.0");
    assert_eq!(plan["digest_from"], "own-record");
    assert_eq!(plan["promote"], false);
    let human = w.run("plan", "v1.0.0", &[], &[]);
    assert!(
        stdout(&human).contains("kind         rollback from v1.1.0 to v1.0.0"),
        "{}",
        stdout(&human)
    );

    let o = w.deploy("v1.0.0", &[]);
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["kind"], "rollback");
    assert_eq!(report["rollback_from"], "v1.1.0");
    assert!(report["promotion"].is_null(), "nothing copied: {report}");
    assert_eq!(report["image"], w.prod_image(&rc100).as_str());
    assert!(
        report["verdict"]
            .as_str()
            .unwrap()
            .starts_with("rollback from v1.1.0 to v1.0.0: "),
        "{report}"
    );
    assert!(stderr(&o).contains("rollback from v1.1.0 to v1.0.0 in production"));
    assert_eq!(w.prod_version().await, "1.0.0-rc.1");
    // The rollback is a record of its own, of kind rollback.
    let (_, recs) = w.prod.oras_records(&w.spec.repo, &rc100);
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "rollback" && r["previous_release"] == "v1.1.0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_release_never_deployed_here_needs_allow_downgrade() {
    let w = World::new(None).await;
    w.rc("v1.0.0-rc.1", "100", "healthy", "healthy").await;
    w.deploy_ok("v1.0.0-rc.1", 0);
    w.rc("v1.1.0-rc.1", "110", "healthy", "healthy").await;
    w.deploy_ok("v1.1.0-rc.1", 0);
    w.deploy_ok("v1.1.0", 0);
    // Production never ran v1.0.0 (it went straight to v1.1.0).
    let o = w.deploy("v1.0.0", &[]);
    plan_predicts(&w, "v1.0.0", &[], &o, 3);
    assert!(stderr(&o).contains("never deployed to production, which runs v1.1.0"));
    assert!(stderr(&o).contains("--allow-downgrade"));
    assert_eq!(w.prod_version().await, "1.1.0-rc.1");
    let o = w.deploy("v1.0.0", &["--allow-downgrade"]);
    assert_exit(&o, 0);
    assert_eq!(w.prod_version().await, "1.0.0-rc.1");
    // Going back to an older rc in staging is the same rule.
    let o = w.deploy("v1.0.0-rc.1", &[]);
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["kind"], "rollback");
    assert_eq!(report["rollback_from"], "v1.1.0-rc.1");
}

pub fn release_event(dir: &std::path::Path, tag: &str) -> std::path::PathBuf {
    let path = dir.join(format!("event-{tag}.json"));
    std::fs::write(
        &path,
        serde_json::json!({
            "action": "published",
            "release": {"tag_name": tag, "draft": false, "prerelease": tag.contains("-rc."), "html_url": "https://github.com/o/r/releases/x"},
            "repository": {"full_name": "o/r"}
        })
        .to_string(),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_release_run_never_overwrites_a_newer_release() {
    let w = World::new(None).await;
    w.rc("v1.0.0-rc.1", "100", "healthy", "healthy").await;
    w.deploy_ok("v1.0.0-rc.1", 0);
    w.deploy_ok("v1.0.0", 0);
    w.rc("v1.1.0-rc.1", "110", "healthy", "healthy").await;
    w.deploy_ok("v1.1.0-rc.1", 0);
    w.deploy_ok("v1.1.0", 0);

    // The release event of v1.0.0, first attempt, starting late.
    let event = release_event(w.dir.path(), "v1.0.0");
    let ev = event.to_str().unwrap();
    let first = [("GITHUB_RUN_ATTEMPT", "1".to_string())];
    let o = w.run("deploy", "", &["--event", ev], &first);
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("a newer release is live; re-run or dispatch to roll back"),
        "{}",
        stderr(&o)
    );
    let p = w.run("plan", "", &["--event", ev], &first);
    assert_exit(&p, 3);
    assert_eq!(w.prod_version().await, "1.1.0-rc.1", "nothing changed");

    // Re-running that workflow run is deliberate: a rollback.
    let o = w.run(
        "deploy",
        "",
        &["--event", ev, "--output", "json"],
        &[("GITHUB_RUN_ATTEMPT", "2".to_string())],
    );
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["kind"], "rollback");
    assert_eq!(w.prod_version().await, "1.0.0-rc.1");
}

/// Three runs started at once: whichever way their claims interleave (one alone and held,
/// the others refused at once or after the window; or all settling and the oldest going
/// on), exactly one rolls out and the others change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn of_three_simultaneous_runs_exactly_one_rolls_out() {
    let w = World::new(None).await;
    let tags = ["v5.0.0-rc.1", "v5.0.0-rc.2", "v5.0.0-rc.3"];
    let mut images = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        images.push(w.rc(t, &format!("50{}", i + 1), "healthy", "healthy").await);
    }
    let family = format!("{}-{}", w.staging_cluster, w.spec.service);
    let before = w.sim.revisions(&family).await;
    let spawn = |tag: &str| {
        let mut e = w.env();
        e.push(("FERRY_CLAIM_SETTLE_MS", "1500".into()));
        ferry_command(
            &[
                "deploy",
                "--environments",
                w.dir.path().to_str().unwrap(),
                "--tag",
                tag,
                "--output",
                "json",
            ],
            &e,
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let children: Vec<_> = tags.iter().map(|t| spawn(t)).collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
    let all = || outs.iter().map(stderr).collect::<Vec<_>>().join("\n---\n");
    let winners: Vec<usize> = (0..3).filter(|i| codes[*i] == Some(0)).collect();
    assert!(
        winners.len() == 1 && codes.iter().filter(|c| **c == Some(3)).count() == 2,
        "expected one 0 and two 3, got {codes:?}\n{}",
        all()
    );
    let (winner, image) = (&outs[winners[0]], &images[winners[0]]);
    for (i, loser) in outs.iter().enumerate().filter(|(i, _)| *i != winners[0]) {
        assert!(
            stderr(loser).contains("another run is deploying")
                && stderr(loser).contains("nothing was changed"),
            "run {i}: {}",
            stderr(loser)
        );
    }
    let report: Value = serde_json::from_str(&stdout(winner)).unwrap();
    assert_eq!(report["outcome"], "deployed");
    assert_eq!(
        w.sim.revisions(&family).await,
        before + 1,
        "only the winner registered a revision"
    );
    let svc = w.sim.describe(&w.staging_cluster, &w.spec.service).await;
    let td = w
        .sim
        .client()
        .describe_task_definition()
        .task_definition(svc.task_definition().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        td.task_definition().unwrap().container_definitions()[0].image(),
        Some(w.staging_image(image).as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_history_and_a_drift_made_by_hand() {
    let w = World::new(None).await;
    w.rc("v6.0.0-rc.1", "601", "healthy", "healthy").await;
    w.rc("v6.0.0-rc.2", "602", "crash", "healthy").await;
    w.deploy_ok("v6.0.0-rc.1", 0);
    w.deploy_ok("v6.0.0-rc.2", 4);

    let o = w.run(
        "status",
        "",
        &["staging", "--output", "json", "--history", "5"],
        &[],
    );
    assert_exit(&o, 0);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let env = &st[0];
    assert_eq!(env["environment"], "staging");
    assert_eq!(env["live_release"], "v6.0.0-rc.1");
    let hist = env["history"].as_array().unwrap();
    assert_eq!(
        hist.iter()
            .map(|h| (h["tag"].as_str().unwrap(), h["result"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        vec![("v6.0.0-rc.2", "rolled-back"), ("v6.0.0-rc.1", "succeeded")]
    );
    assert_eq!(env["drift"].as_array().unwrap().len(), 0, "{env}");

    // Somebody points the service at another revision by hand.
    let svc = w.sim.describe(&w.staging_cluster, &w.spec.service).await;
    let current = svc.task_definition().unwrap().to_string();
    let family = format!("{}-{}", w.staging_cluster, w.spec.service);
    let first = format!("{}:1", current.rsplit_once(':').unwrap().0);
    assert!(first.contains(&family));
    w.sim
        .client()
        .update_service()
        .cluster(&w.staging_cluster)
        .service(&w.spec.service)
        .task_definition(&first)
        .send()
        .await
        .unwrap();
    w.sim.wait_idle(&w.staging_cluster, &w.spec.service).await;

    let o = w.run("status", "", &["staging", "--output", "json"], &[]);
    assert_exit(&o, 0);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let drift = st[0]["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "{st}");
    assert!(
        drift[0].as_str().unwrap().contains("changed outside ferry"),
        "{drift:?}"
    );
    let human = w.run("status", "", &["staging"], &[]);
    assert_exit(&human, 0);
    let text = stdout(&human);
    assert!(text.contains("staging: v6.0.0-rc.1 since "), "{text}");
    assert!(text.contains("DRIFT  "), "{text}");
    assert!(text.contains("rolled-back"), "{text}");
}
