//! One environment, several regions (issue 18): production in `us-east-1` (wave 1) and
//! `eu-west-1` (wave 2), each its own registry and its own region of the ECS simulator, both
//! promoting what staging verified. A release that fails in wave 2 goes back in both regions
//! (`rollback-all`), or only in wave 2 (`keep-earlier`).

use std::process::Output;

use serde_json::Value;

use crate::common::*;

pub(crate) const EU: &str = "eu-west-1";

pub(crate) struct World {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) staging: Registry,
    pub(crate) east: Registry,
    pub(crate) west: Registry,
    pub(crate) sim: EcsSim,
    pub(crate) repo: String,
    pub(crate) cluster: String,
    pub(crate) staging_account: String,
    pub(crate) prod_account: String,
}

impl World {
    /// Neither region's repository holds a claim.
    pub(crate) async fn assert_no_claims(&self) {
        assert_eq!(
            self.east.claim_tags(&self.repo).await,
            Vec::<String>::new(),
            "us-east-1's claim is gone"
        );
        assert_eq!(
            self.west.claim_tags(&self.repo).await,
            Vec::<String>::new(),
            "eu-west-1's claim is gone"
        );
    }

    pub(crate) async fn new() -> World {
        let (staging_account, prod_account) = (random_account(), random_account());
        let w = World {
            dir: tempfile::tempdir().unwrap(),
            staging: Registry::with_referrers(&staging_account),
            east: Registry::for_account(&prod_account),
            west: Registry::for_account_in(&prod_account, EU),
            sim: EcsSim::start(),
            repo: unique("app"),
            cluster: unique("cluster"),
            staging_account,
            prod_account,
        };
        w.write_config("");
        // Everything runs v0.9.0, deployed before ferry.
        let base = w
            .staging
            .push_image(&w.repo, "v0.9.0-rc.1", &["--seed", "90"]);
        w.sim
            .image(&w.staging_ref(&base), "0.9.0-rc.1", "healthy")
            .await;
        w.sim
            .service(&w.staging_cluster(), "web", "web", &w.staging_ref(&base))
            .await;
        for (reg, region) in [(&w.east, region()), (&w.west, EU.to_string())] {
            let d = reg.push_image(&w.repo, "v0.9.0", &["--seed", "90"]);
            let image = format!("{}/{}@{d}", reg.ecr_host(), w.repo);
            w.sim.image(&image, "0.9.0-rc.1", "healthy").await;
            w.sim
                .service_in(&region, &w.prod_cluster(), "web", "web", &image)
                .await;
        }
        w
    }

    pub(crate) fn staging_cluster(&self) -> String {
        format!("{}-staging", self.cluster)
    }

    pub(crate) fn prod_cluster(&self) -> String {
        format!("{}-production", self.cluster)
    }

    pub(crate) fn staging_ref(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.staging.ecr_host(), self.repo)
    }

    /// Staging (one region) and production: two targets, us-east-1 in wave 1, eu-west-1 in
    /// wave 2, each with its own smoke check; `deploy` is production's `[deploy]` table.
    pub(crate) fn write_config(&self, deploy: &str) {
        let region = region();
        let smoke = |url: String| {
            format!("url = \"{url}\"\nversion_field = \"version\"\ndeadline_seconds = 8\ntimeout_seconds = 2\n")
        };
        let staging = format!(
            "account_id = \"{a}\"\nregion = \"{region}\"\n[role]\narn = \"arn:aws:iam::{a}:role/ferry-deploy\"\n[release]\nmatch = \"prerelease\"\n[image]\nrepository = \"{repo}\"\n[[services]]\ncluster = \"{c}\"\nservice = \"web\"\ncontainer = \"web\"\n[[smoke]]\n{s}",
            a = self.staging_account,
            repo = self.repo,
            c = self.staging_cluster(),
            s = smoke(self.sim.health_url(&self.staging_cluster(), "web")),
        );
        let production = format!(
            "account_id = \"{a}\"\nregion = \"{region}\"\n[role]\narn = \"arn:aws:iam::{a}:role/ferry-deploy\"\n[release]\nmatch = \"final\"\n[promote]\nfrom = \"staging\"\n[image]\nrepository = \"{repo}\"\n[[services]]\ncluster = \"{c}\"\nservice = \"web\"\ncontainer = \"web\"\n{deploy}\n[[targets]]\nname = \"us-east-1\"\nregion = \"{region}\"\n[[targets.smoke]]\n{east}\n[[targets]]\nname = \"eu-west-1\"\nregion = \"{EU}\"\n[[targets.smoke]]\n{west}",
            a = self.prod_account,
            repo = self.repo,
            c = self.prod_cluster(),
            east = smoke(self.sim.health_url(&self.prod_cluster(), "web")),
            west = smoke(self.sim.health_url_in(EU, &self.prod_cluster(), "web")),
        );
        std::fs::write(self.dir.path().join("staging.toml"), staging).unwrap();
        std::fs::write(self.dir.path().join("production.toml"), production).unwrap();
    }

    /// A candidate: healthy in staging and us-east-1; in eu-west-1 as `west` says.
    pub(crate) async fn rc(&self, tag: &str, seed: &str, west: &str) -> String {
        let d = self.staging.push_image(&self.repo, tag, &["--seed", seed]);
        let v = tag.trim_start_matches('v');
        self.sim.image(&self.staging_ref(&d), v, "healthy").await;
        let east = format!("{}/{}@{d}", self.east.ecr_host(), self.repo);
        let west_ref = format!("{}/{}@{d}", self.west.ecr_host(), self.repo);
        self.sim.image(&east, v, "healthy").await;
        self.sim.image(&west_ref, v, west).await;
        d
    }

    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let endpoints = format!(
            "{},{},{}",
            self.staging.endpoint_entry(),
            self.east.endpoint_entry(),
            self.west.endpoint_entry()
        );
        vec![
            ("FERRY_REGISTRY_ENDPOINTS", endpoints),
            ("AWS_ENDPOINT_URL_ECS", self.sim.endpoint.clone()),
            ("AWS_MAX_ATTEMPTS", "3".into()),
        ]
    }

    pub(crate) fn run(&self, cmd: &str, tag: &str) -> Output {
        self.run_with(cmd, tag, &[], &[])
    }

    /// `ferry <cmd> --tag <tag> --output json <args>`, with more environment variables.
    pub(crate) fn run_with(
        &self,
        cmd: &str,
        tag: &str,
        args: &[&str],
        env: &[(&'static str, String)],
    ) -> Output {
        let dir = self.dir.path().to_str().unwrap();
        let mut all = vec![cmd, "--environments", dir, "--tag", tag, "--output", "json"];
        all.extend_from_slice(args);
        let mut vars = self.env();
        vars.extend(env.iter().cloned());
        ferry(&all, &vars)
    }

    pub(crate) fn deploy(&self, tag: &str, code: i32) -> Value {
        let o = self.run("deploy", tag);
        assert_exit(&o, code);
        serde_json::from_str(&stdout(&o)).unwrap()
    }

    /// The digest production's web runs in `region`.
    pub(crate) async fn runs(&self, region: &str) -> String {
        let svc = self
            .sim
            .describe_in(region, &self.prod_cluster(), "web")
            .await;
        let td = self
            .sim
            .client_in(region)
            .describe_task_definition()
            .task_definition(svc.task_definition().unwrap())
            .send()
            .await
            .unwrap();
        let image = td.task_definition().unwrap().container_definitions()[0]
            .image()
            .unwrap()
            .to_string();
        image.split_once('@').unwrap().1.to_string()
    }
}

pub(crate) fn states(r: &Value) -> Vec<(String, u64, String)> {
    r["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets in {r}"))
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_string(),
                t["wave"].as_u64().unwrap(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub(crate) fn st(target: &str, wave: u64, state: &str) -> (String, u64, String) {
    (target.to_string(), wave, state.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_regions_in_two_waves_and_a_wave_two_failure_goes_back_everywhere() {
    let w = World::new().await;
    let v1 = w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");

    // The plan shows both targets, in wave order; it changes nothing.
    let o = w.run("plan", "v1.0.0");
    assert_exit(&o, 0);
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(plan["deploys_to"]["name"], "us-east-1");
    assert_eq!(plan["targets"][0]["deploys_to"]["name"], EU);
    assert_eq!(plan["targets"][0]["deploys_to"]["wave"], 2);
    assert_eq!(plan["targets"][0]["region"], EU);

    // All green: wave 1, then wave 2; both regions run the promoted digest.
    let r = w.deploy("v1.0.0", 0);
    assert_eq!(r["outcome"], "deployed", "{r}");
    assert_eq!(
        states(&r),
        [st("us-east-1", 1, "deployed"), st(EU, 2, "deployed")]
    );
    assert_eq!(w.runs(&region()).await, v1);
    assert_eq!(w.runs(EU).await, v1);
    assert_eq!(w.west.skopeo_digest(&w.repo, "v1.0.0"), Some(v1.clone()));
    // Wave 2 started only after wave 1 ended: eu-west-1's first change follows us-east-1's last.
    let log = w.sim.get("/_sim/log").await;
    let calls: Vec<(f64, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["at"].as_f64().unwrap(),
                c["region"].as_str().unwrap_or_default().to_string(),
                c["operation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let east_update = calls
        .iter()
        .filter(|(_, r, op)| r == &region() && op == "UpdateService")
        .map(|(t, _, _)| *t)
        .fold(f64::MIN, f64::max);
    let west_update = calls
        .iter()
        .filter(|(_, r, op)| r == EU && op == "UpdateService")
        .map(|(t, _, _)| *t)
        .fold(f64::MAX, f64::min);
    assert!(east_update < west_update, "wave 2 waited for wave 1");

    // Again, five times: already deployed everywhere, nothing registered.
    for n in 0..5 {
        let r = w.deploy("v1.0.0", 0);
        assert_eq!(r["outcome"], "already-deployed", "re-run {n}: {r}");
        assert_eq!(
            states(&r),
            [
                st("us-east-1", 1, "already-deployed"),
                st(EU, 2, "already-deployed")
            ]
        );
    }
    assert_eq!(
        w.sim
            .revisions_in(EU, &format!("{}-web", w.prod_cluster()))
            .await,
        2,
        "the seed's and v1.0.0's"
    );

    // v1.1.0 fails its smoke check in eu-west-1 only: eu-west-1 rolls back, and us-east-1,
    // which passed, goes back to v1.0.0 (rollback-all). One verdict names both.
    w.rc("v1.1.0-rc.1", "110", "smoke-error").await;
    assert_eq!(w.deploy("v1.1.0-rc.1", 0)["outcome"], "deployed");
    let r = w.deploy("v1.1.0", 4);
    assert_eq!(r["outcome"], "rolled-back", "{r}");
    assert_eq!(
        states(&r),
        [st("us-east-1", 1, "reverted"), st(EU, 2, "rolled-back")]
    );
    let verdict = r["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("production/us-east-1 (wave 1): rolled back to v1.0.0")
            && verdict.contains("production/eu-west-1 (wave 2): rolled back"),
        "{verdict}"
    );
    assert_eq!(w.runs(&region()).await, v1);
    assert_eq!(w.runs(EU).await, v1);

    // keep-earlier: wave 1 keeps v1.1.0, only eu-west-1 goes back.
    w.write_config("[deploy]\non_failure = \"keep-earlier\"\n");
    let r = w.deploy("v1.1.0", 4);
    assert_eq!(
        states(&r),
        [st("us-east-1", 1, "deployed"), st(EU, 2, "rolled-back")],
        "{r}"
    );
    assert_ne!(w.runs(&region()).await, v1, "wave 1 keeps the release");
    assert_eq!(w.runs(EU).await, v1);

    // status shows every target and that they differ.
    let dir = w.dir.path().to_str().unwrap();
    let endpoints = format!(
        "{},{},{}",
        w.staging.endpoint_entry(),
        w.east.endpoint_entry(),
        w.west.endpoint_entry()
    );
    let o = ferry(
        &["status", "--environments", dir, "--output", "json"],
        &[
            ("FERRY_REGISTRY_ENDPOINTS", endpoints),
            ("AWS_ENDPOINT_URL_ECS", w.sim.endpoint.clone()),
        ],
    );
    assert_exit(&o, 0);
    let status: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let prod: Vec<&Value> = status
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["environment"]
                .as_str()
                .unwrap()
                .starts_with("production/")
        })
        .collect();
    let names: Vec<&str> = prod
        .iter()
        .map(|e| e["environment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["production/us-east-1", "production/eu-west-1"]);
    assert_eq!(prod[0]["live_release"], "v1.1.0");
    assert_eq!(prod[1]["live_release"], "v1.0.0");
    let drift = prod[1]["drift"].to_string();
    assert!(
        drift.contains("the targets differ: production/us-east-1 runs v1.1.0, production/eu-west-1 runs v1.0.0"),
        "{drift}"
    );
}

/// A target of a later wave that would be refused refuses the whole release before anything
/// changes, as `plan` says: wave 1 is not deployed and then rolled back.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_in_wave_two_refuses_the_release_before_wave_one_changes() {
    let w = World::new().await;
    w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");
    // Somebody else's deployment is still rolling in eu-west-1 (its tasks take a minute).
    w.sim
        .control(
            "/_sim/timing",
            serde_json::json!({"task_start_seconds": 60.0}),
        )
        .await;
    w.sim
        .client_in(EU)
        .update_service()
        .cluster(w.prod_cluster())
        .service("web")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    let east_before = w.runs(&region()).await;
    for cmd in ["plan", "deploy"] {
        let o = w.run(cmd, "v1.0.0");
        assert_exit(&o, 3);
        let err = stderr(&o);
        assert!(err.contains("has a deployment in flight"), "{cmd}: {err}");
    }
    assert_eq!(
        w.runs(&region()).await,
        east_before,
        "wave 1 was not touched"
    );
    assert_eq!(
        w.sim.revisions(&format!("{}-web", w.prod_cluster())).await,
        1,
        "no revision registered in us-east-1"
    );
}

/// SIGINT while wave 2 rolls out: ferry releases every claim it holds (one per target),
/// names what is still rolling out there by target, exits 5; a re-run finishes the release.
#[tokio::test(flavor = "multi_thread")]
async fn sigint_in_wave_two_releases_every_claim_and_a_rerun_finishes() {
    let w = World::new().await;
    w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");
    // Rollouts of about 20 s, so that wave 2 is caught mid-way.
    w.sim
        .control(
            "/_sim/timing",
            serde_json::json!({"task_start_seconds": 8.0}),
        )
        .await;
    let dir = w.dir.path().to_str().unwrap().to_string();
    let run = Deploying::until(
        ferry_command(
            &["deploy", "--environments", &dir, "--tag", "v1.0.0"],
            &w.env(),
        ),
        |line| line.contains("eu-west-1:") && line.contains("(deployment ecs-svc/"),
        std::time::Duration::from_secs(120),
    );
    assert_eq!(
        w.west.claim_tags(&w.repo).await.len(),
        1,
        "wave 2 holds its claim"
    );
    let (code, err) = run.signal("INT");
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("stopped by an interrupt")
            && err.contains("eu-west-1:")
            && err.contains("released its claim"),
        "{err}"
    );
    w.assert_no_claims().await;
    // A re-run, with --wait-for-idle for the rollout ECS is still finishing: done everywhere.
    let o = ferry(
        &[
            "deploy",
            "--environments",
            &dir,
            "--tag",
            "v1.0.0",
            "--wait-for-idle",
            "--output",
            "json",
        ],
        &w.env(),
    );
    assert_exit(&o, 0);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        states(&r),
        [
            st("us-east-1", 1, "already-deployed"),
            st(EU, 2, "already-deployed")
        ],
        "{r}"
    );
}

/// The run deadline over waves: each target alone fits, but two waves one after another do
/// not, so the release is refused before anything changes (not cut short in wave 2).
#[tokio::test(flavor = "multi_thread")]
async fn waves_add_up_against_the_run_deadline() {
    let w = World::new().await;
    w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");
    let o = w.run("plan", "v1.0.0");
    assert_exit(&o, 0);
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // What one target may need: its rollout, its rollback and its smoke check (8 s).
    let need = |p: &Value| {
        let c = &p["changes"][0];
        c["rollout_timeout_seconds"].as_u64().unwrap()
            + c["rollback_timeout_seconds"].as_u64().unwrap()
            + 8
    };
    let (one, two) = (need(&plan), need(&plan["targets"][0]));
    let deadline = one.max(two) + 30;
    assert!(
        deadline < one + two,
        "{deadline} s must fit one wave, not both"
    );
    let dir = w.dir.path().to_str().unwrap();
    let o = ferry(
        &[
            "deploy",
            "--environments",
            dir,
            "--tag",
            "v1.0.0",
            "--deadline",
            &format!("{deadline}s"),
        ],
        &w.env(),
    );
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("its 2 waves run one after another") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(
        w.sim.revisions(&format!("{}-web", w.prod_cluster())).await,
        1,
        "nothing registered in us-east-1"
    );
}

/// `validate --online` goes target by target, each with its own account, region and role: a
/// repository missing in eu-west-1 fails that target's check, by name, while us-east-1's pass.
#[tokio::test(flavor = "multi_thread")]
async fn validate_online_checks_each_target_in_its_region() {
    let w = World::new().await;
    create_repository(&w.staging_account, &w.repo).await;
    create_repository(&w.prod_account, &w.repo).await;
    let dir = w.dir.path().to_str().unwrap();
    let validate = || {
        let o = ferry(
            &[
                "validate",
                "--online",
                "--environments",
                dir,
                "--output",
                "json",
            ],
            &w.env(),
        );
        let checks: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
        (o, checks)
    };
    let of = |checks: &[Value], env: &str| -> Vec<(String, bool)> {
        checks
            .iter()
            .filter(|c| c["environment"] == env)
            .map(|c| (c["check"].as_str().unwrap().to_string(), c["ok"] == true))
            .collect()
    };
    let repository = format!("repository {}", w.repo);
    let service = format!("service {}/web", w.prod_cluster());

    let (o, checks) = validate();
    assert_exit(&o, 2);
    let east = of(&checks, "production/us-east-1");
    for check in ["config", "role", repository.as_str(), service.as_str()] {
        assert!(
            east.contains(&(check.to_string(), true)),
            "us-east-1 passes {check}: {east:?}"
        );
    }
    let west = of(&checks, "production/eu-west-1");
    assert!(
        west.contains(&("role".to_string(), true)) && west.contains(&(repository.clone(), false)),
        "{west:?}"
    );
    let failed: Vec<&Value> = checks.iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "only eu-west-1's repository: {failed:?}");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("production/eu-west-1 {repository}"))
            && err.contains(&format!(
                "ECR repository {} does not exist in account {} {EU}",
                w.repo, w.prod_account
            )),
        "{err}"
    );

    // Created there too: every check of both targets passes, eu-west-1's service included.
    let conf = setup_config(&w.prod_account).await;
    let eu = aws_sdk_ecr::config::Builder::from(&conf)
        .region(aws_sdk_ecr::config::Region::new(EU))
        .build();
    aws_sdk_ecr::Client::from_conf(eu)
        .create_repository()
        .repository_name(&w.repo)
        .send()
        .await
        .unwrap();
    let (o, checks) = validate();
    assert_exit(&o, 0);
    let west = of(&checks, "production/eu-west-1");
    for check in ["role", repository.as_str(), service.as_str()] {
        assert!(
            west.contains(&(check.to_string(), true)),
            "eu-west-1 passes {check}: {west:?}"
        );
    }
}
