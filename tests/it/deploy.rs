//! `ferry deploy` end to end: moto (STS/ECR auth), a real registry (image digests), and the
//! ECS rollout simulator (tests/ecs_sim) whose app endpoint answers with the version that
//! really runs, so the smoke gate sees what a user would.

use crate::common::*;
use serde_json::Value;

/// A staging environment whose service runs a healthy baseline release.
pub struct World {
    pub spec: EnvSpec,
    pub dir: tempfile::TempDir,
    pub registry: Registry,
    pub sim: EcsSim,
    pub cluster: String,
    pub baseline_td: String,
}

impl World {
    pub async fn new() -> World {
        let mut spec = EnvSpec::new();
        let sim = EcsSim::start();
        let cluster = format!("{}-staging", spec.cluster);
        spec.staging_smoke = Some(sim.health_url(&cluster, &spec.service));
        let dir = spec.write();
        let registry = Registry::for_account(&spec.staging_account);
        let base = registry.push_image(&spec.repo, "v0.9.0-rc.1", &["--seed", "90"]);
        let base_image = format!("{}/{}@{base}", registry.ecr_host(), spec.repo);
        sim.image(&base_image, "0.9.0-rc.1", "healthy").await;
        let baseline_td = sim
            .service(&cluster, &spec.service, &spec.container, &base_image)
            .await;
        World {
            spec,
            dir,
            registry,
            sim,
            cluster,
            baseline_td,
        }
    }

    /// Pushes `tag` and declares how its image behaves; returns the image reference.
    pub async fn release(&self, tag: &str, seed: &str, behavior: &str) -> String {
        let digest = self
            .registry
            .push_image(&self.spec.repo, tag, &["--seed", seed]);
        let image = format!("{}/{}@{digest}", self.registry.ecr_host(), self.spec.repo);
        self.sim
            .image(&image, tag.trim_start_matches('v'), behavior)
            .await;
        image
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("FERRY_REGISTRY_ENDPOINTS", self.registry.endpoint_entry()),
            ("AWS_ENDPOINT_URL_ECS", self.sim.endpoint.clone()),
            ("AWS_MAX_ATTEMPTS", "3".into()),
        ]
    }

    pub fn deploy(&self, tag: &str, extra: &[&str]) -> std::process::Output {
        self.run("deploy", tag, extra)
    }

    pub fn plan(&self, tag: &str, extra: &[&str]) -> std::process::Output {
        self.run("plan", tag, extra)
    }

    /// `ferry <command> --environments … --tag <tag> <extra…>` on this world.
    pub fn run(&self, command: &str, tag: &str, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            command,
            "--environments",
            self.dir.path().to_str().unwrap(),
            "--tag",
            tag,
        ];
        args.extend_from_slice(extra);
        ferry(&args, &self.env())
    }

    pub async fn running_td(&self) -> String {
        self.sim
            .describe(&self.cluster, &self.spec.service)
            .await
            .task_definition()
            .unwrap()
            .to_string()
    }

    pub async fn running_image(&self) -> String {
        let td = self.running_td().await;
        let out = self
            .sim
            .client()
            .describe_task_definition()
            .task_definition(td)
            .send()
            .await
            .unwrap();
        out.task_definition().unwrap().container_definitions()[0]
            .image()
            .unwrap()
            .to_string()
    }

    /// Someone else's deployment of `image`, left in flight (ferry did not start it).
    pub async fn start_other_deployment(&self, image: &str) {
        let ecs = self.sim.client();
        let out = ecs
            .describe_task_definition()
            .task_definition(&self.baseline_td)
            .send()
            .await
            .unwrap();
        let mut c = out.task_definition().unwrap().container_definitions()[0].clone();
        c.image = Some(image.to_string());
        let td = ecs
            .register_task_definition()
            .family(self.family())
            .container_definitions(c)
            .send()
            .await
            .unwrap();
        ecs.update_service()
            .cluster(&self.cluster)
            .service(&self.spec.service)
            .task_definition(td.task_definition().unwrap().task_definition_arn().unwrap())
            .send()
            .await
            .unwrap();
    }

    pub fn family(&self) -> String {
        format!("{}-{}", self.cluster, self.spec.service)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_deploy_succeeds_and_a_rerun_changes_nothing() {
    let w = World::new().await;
    let image = w.release("v1.0.0-rc.1", "100", "healthy").await;

    let o = w.deploy("v1.0.0-rc.1", &["--output", "json"]);
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["outcome"], "deployed");
    assert_eq!(report["image"], image.as_str());
    assert_eq!(report["smoke"][0]["ok"], true);
    let svc = &report["services"][0];
    assert_eq!(svc["state"], "deployed");
    assert_eq!(svc["previous_task_definition"], w.baseline_td.as_str());
    assert!(svc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["field"] == "containerDefinitions[web].image"));
    // Live progress went to stderr, one line per event.
    let err = stderr(&o);
    assert!(
        err.contains("rollout COMPLETED") || err.contains("succeeded"),
        "{err}"
    );

    // The service runs the new revision, pinned by digest, with ferry's tags and its own kept.
    assert_eq!(w.running_image().await, image);
    let td = w.running_td().await;
    assert_ne!(td, w.baseline_td);
    let out = w
        .sim
        .client()
        .describe_task_definition()
        .task_definition(&td)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let tag = |k: &str| {
        out.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("ferry:release").as_deref(), Some("v1.0.0-rc.1"));
    assert_eq!(tag("ferry:version").as_deref(), Some("1.0.0-rc.1"));
    assert_eq!(tag("team").as_deref(), Some("shop"));
    let c = &out.task_definition().unwrap().container_definitions()[0];
    assert_eq!(
        c.environment()[0].name(),
        Some("MODE"),
        "untouched fields survive"
    );
    assert_eq!(
        out.task_definition().unwrap().execution_role_arn(),
        Some("arn:aws:iam::123456789012:role/exec")
    );

    // A re-run: already deployed, no new revision.
    let revisions = w.sim.revisions(&w.family()).await;
    let o = w.deploy("v1.0.0-rc.1", &[]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("ALREADY DEPLOYED"), "{}", stdout(&o));
    assert!(stderr(&o).contains("already deployed"), "{}", stderr(&o));
    assert_eq!(w.sim.revisions(&w.family()).await, revisions);

    // ferry status names the release.
    let o = ferry(
        &[
            "status",
            "staging",
            "--environments",
            w.dir.path().to_str().unwrap(),
        ],
        &w.env(),
    );
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("v1.0.0-rc.1"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_that_never_start_are_rolled_back_with_the_reason() {
    let w = World::new().await;
    w.release("v1.1.0-rc.1", "110", "crash").await;
    let o = w.deploy("v1.1.0-rc.1", &[]);
    assert_exit(&o, 4);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("FAILED, ROLLED BACK"), "{out}");
    assert!(
        err.contains("circuit breaker"),
        "the verdict names the circuit breaker: {err}"
    );
    assert!(
        out.contains("Essential container in task exited"),
        "stopped task reason in the evidence: {out}"
    );
    assert!(
        out.contains("exit 1"),
        "container exit code in the evidence: {out}"
    );
    assert!(err.contains("back on its previous"), "{err}");
    assert_eq!(
        w.running_td().await,
        w.baseline_td,
        "the service runs the baseline again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_smoke_check_rolls_back() {
    let w = World::new().await;
    w.release("v1.2.0-rc.1", "120", "smoke-error").await;
    let o = w.deploy("v1.2.0-rc.1", &["--output", "json"]);
    assert_exit(&o, 4);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["outcome"], "rolled-back");
    assert_eq!(report["smoke"][0]["ok"], false);
    assert!(
        report["smoke"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("status 500"),
        "{report}"
    );
    assert_eq!(report["services"][0]["state"], "rolled-back");
    assert!(
        report["verdict"].as_str().unwrap().contains("smoke check"),
        "{report}"
    );
    let svc = w.sim.wait_idle(&w.cluster, &w.spec.service).await;
    assert_eq!(svc.task_definition(), Some(w.baseline_td.as_str()));
    // The app answers with the baseline version again.
    let health: Value = reqwest::get(w.sim.health_url(&w.cluster, &w.spec.service))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["version"], "0.9.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_fails_needs_a_person() {
    let w = World::new().await;
    w.release("v1.3.0-rc.1", "130", "crash").await;
    // The baseline image now crashes on start too: ECS's rollback cannot succeed.
    let base_image = {
        let out = w
            .sim
            .client()
            .describe_task_definition()
            .task_definition(&w.baseline_td)
            .send()
            .await
            .unwrap();
        out.task_definition().unwrap().container_definitions()[0]
            .image()
            .unwrap()
            .to_string()
    };
    w.sim.image(&base_image, "0.9.0-rc.1", "crash").await;
    let o = w.deploy("v1.3.0-rc.1", &[]);
    assert_exit(&o, 5);
    let err = stderr(&o);
    assert!(err.contains("NOT known to be good"), "{err}");
    assert!(
        stdout(&o).contains("FAILED, NEEDS ATTENTION"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_in_flight_is_refused() {
    let w = World::new().await;
    w.release("v1.4.0-rc.1", "140", "healthy").await;
    // Someone else's slow deployment is in progress.
    let slow = format!("{}/{}:slow", w.registry.ecr_host(), w.spec.repo);
    w.sim.image(&slow, "slow", "slow").await;
    w.start_other_deployment(&slow).await;
    let revisions = w.sim.revisions(&w.family()).await;
    let o = w.deploy("v1.4.0-rc.1", &[]);
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("has a deployment in flight"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--wait-for-idle"), "{}", stderr(&o));
    // plan predicts it: the same refusal, the same exit code.
    let p = w.plan("v1.4.0-rc.1", &[]);
    assert_exit(&p, 3);
    assert!(
        stderr(&p).contains("has a deployment in flight"),
        "{}",
        stderr(&p)
    );
    assert_eq!(
        w.sim.revisions(&w.family()).await,
        revisions,
        "nothing registered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried() {
    let w = World::new().await;
    w.release("v1.5.0-rc.1", "150", "healthy").await;
    for op in [
        "DescribeServices",
        "DescribeTaskDefinition",
        "RegisterTaskDefinition",
        "UpdateService",
    ] {
        w.sim
            .control(
                "/_sim/faults",
                serde_json::json!({"operation": op, "error": "ThrottlingException", "count": 2}),
            )
            .await;
    }
    let o = w.deploy("v1.5.0-rc.1", &[]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("DEPLOYED"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_task_definition_change_without_making_it() {
    let w = World::new().await;
    let image = w.release("v1.6.0-rc.1", "160", "healthy").await;
    let revisions = w.sim.revisions(&w.family()).await;
    let o = w.plan("v1.6.0-rc.1", &["--output", "json"]);
    assert_exit(&o, 0);
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let change = &plan["changes"][0];
    assert_eq!(change["current_task_definition"], w.baseline_td.as_str());
    let fields: Vec<&str> = change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "containerDefinitions[web].image",
            "tags[ferry:release]",
            "tags[ferry:version]",
            "tags[ferry:digest]"
        ]
    );
    assert_eq!(change["changes"][0]["to"], image.as_str());
    assert!(change["rollout_timeout_seconds"].as_u64().unwrap() >= 180);
    assert_eq!(
        w.sim.revisions(&w.family()).await,
        revisions,
        "plan registers nothing"
    );
    assert_eq!(w.running_td().await, w.baseline_td, "plan changes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn production_promotes_the_verified_digest_and_rolls_back_to_an_older_release() {
    let mut spec = EnvSpec::new();
    let sim = EcsSim::start();
    let staging_cluster = format!("{}-staging", spec.cluster);
    let prod_cluster = format!("{}-production", spec.cluster);
    spec.staging_smoke = Some(sim.health_url(&staging_cluster, &spec.service));
    spec.prod_smoke = Some(sim.health_url(&prod_cluster, &spec.service));
    let dir = spec.write();
    let staging = Registry::for_account(&spec.staging_account);
    let prod = Registry::for_account(&spec.prod_account);
    let env = vec![
        (
            "FERRY_REGISTRY_ENDPOINTS",
            format!("{},{}", staging.endpoint_entry(), prod.endpoint_entry()),
        ),
        ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
        ("AWS_MAX_ATTEMPTS", "3".into()),
    ];
    let prod_image = |digest: &str| format!("{}/{}@{digest}", prod.ecr_host(), spec.repo);

    // Production runs 1.9.0; staging verified two candidates of 2.0.0 and one of 2.1.0.
    let base = prod.push_image(&spec.repo, "v1.9.0", &["--seed", "19"]);
    sim.image(&prod_image(&base), "1.9.0", "healthy").await;
    let base_td = sim
        .service(
            &prod_cluster,
            &spec.service,
            &spec.container,
            &prod_image(&base),
        )
        .await;
    // Staging runs its own baseline; every candidate below is deployed there first (the gate).
    let staging_image = |digest: &str| format!("{}/{}@{digest}", staging.ecr_host(), spec.repo);
    let sbase = staging.push_image(&spec.repo, "v1.9.0-rc.1", &["--seed", "19"]);
    sim.image(&staging_image(&sbase), "1.9.0-rc.1", "healthy")
        .await;
    sim.service(
        &staging_cluster,
        &spec.service,
        &spec.container,
        &staging_image(&sbase),
    )
    .await;
    let v200rc1 = staging.push_image(&spec.repo, "v2.0.0-rc.1", &["--seed", "201"]);
    sim.image(&staging_image(&v200rc1), "2.0.0-rc.1", "healthy")
        .await;
    let v200 = staging.push_image(
        &spec.repo,
        "v2.0.0-rc.2",
        &[
            "--seed",
            "202",
            "--platforms",
            "linux/amd64,linux/arm64",
            "--attest",
        ],
    );
    let v210 = staging.push_image(&spec.repo, "v2.1.0-rc.1", &["--seed", "211"]);
    // The app reports the build it is (the release candidate): the same bytes in production
    // answer "2.0.0-rc.2", which the production smoke check accepts for v2.0.0.
    sim.image(&prod_image(&v200), "2.0.0-rc.2", "healthy").await;
    sim.image(&prod_image(&v210), "2.1.0-rc.1", "healthy").await;
    sim.image(&staging_image(&v200), "2.0.0-rc.2", "healthy")
        .await;
    sim.image(&staging_image(&v210), "2.1.0-rc.1", "healthy")
        .await;

    let deploy = |tag: &str| {
        ferry(
            &[
                "deploy",
                "--environments",
                dir.path().to_str().unwrap(),
                "--tag",
                tag,
                "--output",
                "json",
            ],
            &env,
        )
    };
    for rc in ["v2.0.0-rc.1", "v2.0.0-rc.2", "v2.1.0-rc.1"] {
        assert_exit(&deploy(rc), 0);
    }
    let o = deploy("v2.0.0");
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["outcome"], "deployed");
    assert_eq!(
        report["promotion"]["digest"],
        v200.as_str(),
        "the highest rc (rc.2) was promoted"
    );
    assert_eq!(report["promotion"]["manifests"], 5);
    assert_eq!(
        prod.skopeo_digest(&spec.repo, "v2.0.0").as_deref(),
        Some(v200.as_str()),
        "same digest in production"
    );
    let svc = sim.describe(&prod_cluster, &spec.service).await;
    assert_ne!(svc.task_definition(), Some(base_td.as_str()));

    let o = deploy("v2.1.0");
    assert_exit(&o, 0);
    assert_eq!(
        prod.skopeo_digest(&spec.repo, "v2.1.0").as_deref(),
        Some(v210.as_str())
    );

    // Rollback = deploy the older release again: exactly its digest, from production's own
    // record and repository, nothing rebuilt or re-copied.
    let o = deploy("v2.0.0");
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["kind"], "rollback");
    assert!(report["promotion"].is_null(), "{report}");
    assert_eq!(report["image"], prod_image(&v200).as_str());
    let health: Value = reqwest::get(sim.health_url(&prod_cluster, &spec.service))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["version"], "2.0.0-rc.2");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_idle_waits_for_the_deployment_in_flight() {
    let w = World::new().await;
    w.release("v1.7.0-rc.1", "170", "healthy").await;
    // Someone else's deployment that takes ~3 s to start its tasks.
    let other = format!("{}/{}:other", w.registry.ecr_host(), w.spec.repo);
    w.sim
        .control("/_sim/images", serde_json::json!({"image": other, "version": "other", "behavior": "healthy", "start_seconds": 3.0}))
        .await;
    w.start_other_deployment(&other).await;
    let o = w.deploy("v1.7.0-rc.1", &["--wait-for-idle"]);
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("waiting for the deployment in flight"),
        "{}",
        stderr(&o)
    );
    let health: Value = reqwest::get(w.sim.health_url(&w.cluster, &w.spec.service))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["version"], "1.7.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_that_outlives_its_timeout_is_stopped_and_rolled_back() {
    let w = World::new().await;
    let path = w.dir.path().join("staging.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}\n[deploy]\nrollout_timeout_seconds = 2\n"),
    )
    .unwrap();
    w.release("v1.8.0-rc.1", "180", "slow").await;
    let o = w.deploy("v1.8.0-rc.1", &["--output", "json"]);
    assert_exit(&o, 4);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("did not finish within 2s") && verdict.contains("still pending"),
        "{verdict}"
    );
    assert!(
        verdict.contains("0 of 2 task(s) running, 2 pending"),
        "the timeout says what was pending: {verdict}"
    );
    assert!(
        stderr(&o).contains("stopping deployment"),
        "in flight → StopServiceDeployment(ROLLBACK): {}",
        stderr(&o)
    );
    assert_eq!(report["services"][0]["state"], "failed");
    assert_eq!(w.running_td().await, w.baseline_td);
}

/// Staging with two services (api, worker) in one cluster, both on a healthy baseline; the
/// smoke check looks at api only.
struct TwoServices {
    spec: EnvSpec,
    sim: EcsSim,
    registry: Registry,
    cluster: String,
    dir: tempfile::TempDir,
    api_td: String,
    worker_td: String,
}

impl TwoServices {
    async fn new() -> TwoServices {
        let spec = EnvSpec::new();
        let sim = EcsSim::start();
        let registry = Registry::for_account(&spec.staging_account);
        let cluster = format!("{}-staging", spec.cluster);
        let base = registry.push_image(&spec.repo, "v0.9.0-rc.1", &["--seed", "90"]);
        let base_image = format!("{}/{}@{base}", registry.ecr_host(), spec.repo);
        sim.image(&base_image, "0.9.0-rc.1", "healthy").await;
        let api_td = sim.service(&cluster, "api", "app", &base_image).await;
        let worker_td = sim
            .service_in_existing_cluster(&cluster, "worker", "app", &base_image)
            .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("staging.toml"),
            format!(
                "account_id = \"{a}\"\nregion = \"{r}\"\n[role]\narn = \"arn:aws:iam::{a}:role/d\"\n[release]\nmatch = \"prerelease\"\n[image]\nrepository = \"{repo}\"\n\
                 [[services]]\ncluster = \"{cluster}\"\nservice = \"api\"\ncontainer = \"app\"\n\
                 [[services]]\ncluster = \"{cluster}\"\nservice = \"worker\"\ncontainer = \"app\"\n\
                 [[smoke]]\nurl = \"{url}\"\nversion_field = \"version\"\ndeadline_seconds = 3\ntimeout_seconds = 1\n",
                a = spec.staging_account,
                r = region(),
                repo = spec.repo,
                url = sim.health_url(&cluster, "api"),
            ),
        )
        .unwrap();
        TwoServices {
            spec,
            sim,
            registry,
            cluster,
            dir,
            api_td,
            worker_td,
        }
    }

    async fn release(&self, tag: &str, behavior: &str) {
        let d = self
            .registry
            .push_image(&self.spec.repo, tag, &["--seed", "100"]);
        self.sim
            .image(
                &format!("{}/{}@{d}", self.registry.ecr_host(), self.spec.repo),
                tag.trim_start_matches('v'),
                behavior,
            )
            .await;
    }

    fn deploy(&self, tag: &str) -> (std::process::Output, Value) {
        let o = ferry(
            &[
                "deploy",
                "--environments",
                self.dir.path().to_str().unwrap(),
                "--tag",
                tag,
                "--output",
                "json",
            ],
            &[
                ("FERRY_REGISTRY_ENDPOINTS", self.registry.endpoint_entry()),
                ("AWS_ENDPOINT_URL_ECS", self.sim.endpoint.clone()),
                ("AWS_MAX_ATTEMPTS", "3".into()),
            ],
        );
        let report = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
        (o, report)
    }

    async fn assert_both_on_baseline(&self) {
        assert_eq!(
            self.sim
                .wait_idle(&self.cluster, "api")
                .await
                .task_definition(),
            Some(self.api_td.as_str())
        );
        assert_eq!(
            self.sim
                .wait_idle(&self.cluster, "worker")
                .await
                .task_definition(),
            Some(self.worker_td.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_service_rolls_back_every_service_of_the_run() {
    let t = TwoServices::new().await;
    t.release("v1.0.0-rc.1", "smoke-error").await;
    let (o, report) = t.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    let states: Vec<&str> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["rolled-back", "rolled-back"], "{report}");
    t.assert_both_on_baseline().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_that_cannot_be_updated_rolls_back_the_others() {
    let t = TwoServices::new().await;
    t.release("v1.0.0-rc.1", "healthy").await;
    // The first UpdateService of the run is rejected (not retryable); the other service deploys.
    t.sim
        .control("/_sim/faults", serde_json::json!({"operation": "UpdateService", "error": "InvalidParameterException", "count": 1}))
        .await;
    let (o, report) = t.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("could not start the deployment") && verdict.contains("ecs:UpdateService"),
        "{verdict}"
    );
    let mut states: Vec<&str> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    states.sort();
    assert_eq!(
        states,
        ["rolled-back", "unchanged"],
        "one unchanged, one rolled back: {report}"
    );
    t.assert_both_on_baseline().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_online_passes_when_everything_exists() {
    let mut spec = EnvSpec::new();
    let sim = EcsSim::start();
    spec.staging_smoke = None;
    let dir = spec.write();
    for (account, cluster) in [
        (&spec.staging_account, format!("{}-staging", spec.cluster)),
        (&spec.prod_account, format!("{}-production", spec.cluster)),
    ] {
        create_repository(account, &spec.repo).await;
        sim.service(&cluster, &spec.service, &spec.container, "repo@sha256:0")
            .await;
    }
    let staging = Registry::for_account(&spec.staging_account);
    let o = ferry(
        &[
            "validate",
            "--online",
            "--environments",
            dir.path().to_str().unwrap(),
        ],
        &[
            ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
            ("FERRY_REGISTRY_ENDPOINTS", staging.endpoint_entry()),
        ],
    );
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok")).count(),
        11,
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    // Production's own role reads staging's repository (the promotion's reads).
    assert!(out.contains("production's role reads"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_deploy_says_what_it_leaves_behind() {
    let w = World::new().await;
    w.release("v1.9.0-rc.1", "190", "slow").await;
    let child = ferry_command(
        &[
            "deploy",
            "--environments",
            w.dir.path().to_str().unwrap(),
            "--tag",
            "v1.9.0-rc.1",
        ],
        &w.env(),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the deployment is under way, then cancel the job like GitHub Actions does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while w
        .sim
        .describe(&w.cluster, &w.spec.service)
        .await
        .deployments()
        .len()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the deployment never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 5);
    let err = stderr(&o);
    assert!(
        err.contains("stopped by SIGTERM") && err.contains("ferry status"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_codedeploy_service_is_refused_before_anything_changes() {
    use aws_sdk_ecs::types::*;
    let w = World::new().await;
    w.release("v2.0.0-rc.1", "200", "healthy").await;
    // Replace the service with a blue/green (CodeDeploy) one of the same name in another cluster.
    let ecs = w.sim.client();
    let cluster = format!("{}-staging", w.spec.cluster);
    ecs.delete_service()
        .cluster(&cluster)
        .service(&w.spec.service)
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(&cluster)
        .service_name(&w.spec.service)
        .task_definition(&w.baseline_td)
        .desired_count(1)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::CodeDeploy)
                .build()
                .unwrap(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/0123456789abcdef")
                .container_name(&w.spec.container)
                .container_port(8080)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let revisions = w.sim.revisions(&w.family()).await;
    // No CodeDeploy deployment group names the service: refused before anything changes.
    let mut env = w.env();
    env.push(("AWS_ENDPOINT_URL_CODEDEPLOY", w.sim.endpoint.clone()));
    let dir = w.dir.path().to_str().unwrap();
    let o = ferry(
        &["deploy", "--environments", dir, "--tag", "v2.0.0-rc.1"],
        &env,
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains(
            "uses the CODE_DEPLOY deployment controller, but no CodeDeploy deployment group names it"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        w.sim.revisions(&w.family()).await,
        revisions,
        "nothing registered"
    );
}

/// A run killed between RegisterTaskDefinition and UpdateService leaves a revision nobody
/// runs; the next run of the same release reuses it instead of registering another.
#[tokio::test(flavor = "multi_thread")]
async fn an_identical_orphaned_revision_is_reused() {
    let w = World::new().await;
    w.release("v1.0.0-rc.1", "140", "healthy").await;
    let o = w.deploy("v1.0.0-rc.1", &["--output", "json"]);
    assert_exit(&o, 0);
    let orphan = w.running_td().await;
    // Put the service back on the baseline by hand: the revision ferry registered is now an
    // orphan, exactly what an interrupted run leaves behind.
    w.sim
        .client()
        .update_service()
        .cluster(&w.cluster)
        .service(&w.spec.service)
        .task_definition(&w.baseline_td)
        .send()
        .await
        .unwrap();
    w.sim.wait_idle(&w.cluster, &w.spec.service).await;
    let before = w.sim.revisions(&w.family()).await;

    let o = w.deploy("v1.0.0-rc.1", &["--output", "json"]);
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["services"][0]["task_definition"], orphan.as_str());
    assert_eq!(w.running_td().await, orphan);
    assert_eq!(
        w.sim.revisions(&w.family()).await,
        before,
        "no new revision was registered"
    );
    assert!(stderr(&o).contains("reusing"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_logs_of_a_deploy_at_debug_or_trace() {
    use base64::Engine as _;
    let w = World::new().await;
    w.release("v1.0.0-rc.1", "101", "healthy").await;
    w.release("v1.0.1-rc.1", "102", "healthy").await;
    for (level, tag) in [("debug", "v1.0.0-rc.1"), ("trace", "v1.0.1-rc.1")] {
        let mut env = w.env();
        env.push(("FERRY_LOG", level.into()));
        let o = ferry(
            &[
                "deploy",
                "--environments",
                w.dir.path().to_str().unwrap(),
                "--tag",
                tag,
            ],
            &env,
        );
        assert_exit(&o, 0);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        let b64 = base64::engine::general_purpose::STANDARD.encode(w.registry.creds());
        for secret in [
            w.registry.password.as_str(),
            b64.as_str(),
            "ferry-test",
            "SecretAccessKey",
            "SessionToken",
            "FQoGZXIvYXdz",
        ] {
            assert!(!all.contains(secret), "{level}: {secret} leaked");
        }
    }
}

/// The run deadline: a release whose rollout, smoke checks and rollback cannot fit is refused
/// before anything changes; one that fits only with a shorter rollout gets that shorter
/// rollout, and says so.
#[tokio::test(flavor = "multi_thread")]
async fn the_run_deadline_refuses_what_cannot_fit_and_cuts_what_can() {
    let w = World::new().await;
    w.release("v1.4.0-rc.1", "142", "healthy").await;
    let revisions = w.sim.revisions(&w.family()).await;
    let o = w.deploy("v1.4.0-rc.1", &["--deadline", "1m"]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("not enough time left before the run deadline (1m)")
            && err.contains("nothing was changed")
            && err.contains("hint: raise --deadline"),
        "{err}"
    );
    assert_eq!(
        w.sim.revisions(&w.family()).await,
        revisions,
        "nothing registered"
    );
    assert_eq!(w.running_td().await, w.baseline_td);
    // plan predicts it: the same refusal, the same exit code.
    let p = w.plan("v1.4.0-rc.1", &["--deadline", "1m"]);
    assert_exit(&p, 3);
    assert!(
        stderr(&p).contains("not enough time left before the run deadline (1m)"),
        "{}",
        stderr(&p)
    );

    // 5 minutes: the service's own rollout timeout (3 minutes, derived) does not fit beside
    // 20 s of smoke checks and a 3-minute rollback, so it is cut, and the release still lands.
    let o = w.deploy("v1.4.0-rc.1", &["--deadline", "5m", "--output", "json"]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("rollout timeout cut from 3m to"), "{err}");
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let t = report["services"][0]["timeout_seconds"].as_u64().unwrap();
    assert!((60..=100).contains(&t), "cut to {t} s: {report}");
    assert!(err.contains("by the run deadline (5m)"), "{err}");
    assert!(
        report["services"][0]["timeout_why"]
            .as_str()
            .unwrap_or_default()
            .contains("cut from 3m by the run deadline (5m)"),
        "{report}"
    );
}

/// `--wait-for-idle` waits for somebody else's deployment only as long as the run deadline
/// still leaves room for this rollout (a minute), its smoke checks and its rollback, then
/// refuses while nothing has changed (instead of being stopped mid-wait). With 4m35s: 3m20s
/// kept for the smoke checks and the rollback, 1m for the rollout, about 15 s to wait.
#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_idle_ends_within_the_run_deadline() {
    let w = World::new().await;
    w.release("v1.4.0-rc.1", "143", "healthy").await;
    let slow = format!("{}/{}:slow", w.registry.ecr_host(), w.spec.repo);
    w.sim.image(&slow, "slow", "slow").await;
    w.start_other_deployment(&slow).await;
    let revisions = w.sim.revisions(&w.family()).await;
    let o = w.deploy("v1.4.0-rc.1", &["--wait-for-idle", "--deadline", "4m35s"]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("(all the run deadline allowed)") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(!err.contains("stopped by"), "{err}");
    assert_eq!(
        w.sim.revisions(&w.family()).await,
        revisions,
        "nothing registered"
    );
}
