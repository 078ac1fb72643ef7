//! A release of several images (issue 18): `web` and `worker`, built from one commit, pushed
//! under one release tag, deployed to staging as a set and promoted to production as the set
//! staging verified. The worker's task definition also runs a `log` sidecar nobody names,
//! which keeps its image.

use std::process::Output;

use serde_json::Value;

use crate::common::*;

const SIDECAR: &str = "public.ecr.aws/docker/library/busybox:1.36";

struct World {
    dir: tempfile::TempDir,
    staging: Registry,
    prod: Registry,
    sim: EcsSim,
    web: String,
    worker: String,
    staging_cluster: String,
    prod_cluster: String,
    staging_account: String,
    prod_account: String,
}

impl World {
    async fn new() -> World {
        let sim = EcsSim::start();
        let cluster = unique("cluster");
        let (staging_account, prod_account) = (random_account(), random_account());
        let w = World {
            dir: tempfile::tempdir().unwrap(),
            staging: Registry::with_referrers(&staging_account),
            prod: Registry::for_account(&prod_account),
            staging_account,
            prod_account,
            web: unique("web"),
            worker: unique("worker"),
            staging_cluster: format!("{cluster}-staging"),
            prod_cluster: format!("{cluster}-production"),
            sim,
        };
        w.write_config(true);
        // Both environments run a baseline nobody recorded (deployed before ferry).
        let (sweb, swork) = w.push_set("v0.9.0-rc.1", "90", false).await;
        let pweb = w.prod.push_image(&w.web, "v0.9.0", &["--seed", "901"]);
        let pwork = w.prod.push_image(&w.worker, "v0.9.0", &["--seed", "902"]);
        for (img, v) in [
            (w.prod_ref(&w.web, &pweb), "0.9.0-rc.1"),
            (w.prod_ref(&w.worker, &pwork), "0.9.0-rc.1"),
        ] {
            w.sim.image(&img, v, "healthy").await;
        }
        for (cluster, reg, web, work) in [
            (&w.staging_cluster, &w.staging, &sweb, &swork),
            (&w.prod_cluster, &w.prod, &pweb, &pwork),
        ] {
            let web_img = format!("{}/{}@{web}", reg.ecr_host(), w.web);
            let work_img = format!("{}/{}@{work}", reg.ecr_host(), w.worker);
            w.sim.service(cluster, "web", "web", &web_img).await;
            w.sim
                .service_with_sidecar(cluster, "worker", "worker", &work_img, ("log", SIDECAR))
                .await;
        }
        w
    }

    /// The environment files: two images, `web` on the web service, `worker` (and a sidecar
    /// nobody names) on the worker service; with `both` false, the worker image is missing
    /// from the configuration (an environment that shipped one image before).
    fn write_config(&self, both: bool) {
        let region = region();
        let images = if both {
            format!(
                "[[images]]\nname = \"web\"\nrepository = \"{}\"\n[[images]]\nname = \"worker\"\nrepository = \"{}\"\n",
                self.web, self.worker
            )
        } else {
            format!(
                "[[images]]\nname = \"web\"\nrepository = \"{}\"\n",
                self.web
            )
        };
        let services = |cluster: &str| {
            let mut s = format!(
                "[[services]]\ncluster = \"{cluster}\"\nservice = \"web\"\ncontainer = \"web\"\n[[smoke]]\nurl = \"{}\"\nversion_field = \"version\"\ndeadline_seconds = 20\ntimeout_seconds = 2\n",
                self.sim.health_url(cluster, "web")
            );
            if both {
                s += &format!(
                    "[[services]]\ncluster = \"{cluster}\"\nservice = \"worker\"\ncontainer = \"worker\"\nimage = \"worker\"\n[[smoke]]\nurl = \"{}\"\nversion_field = \"version\"\ndeadline_seconds = 20\ntimeout_seconds = 2\n",
                    self.sim.health_url(cluster, "worker")
                );
            }
            s
        };
        let staging = format!(
            "account_id = \"{a}\"\nregion = \"{region}\"\n[role]\narn = \"arn:aws:iam::{a}:role/ferry-deploy\"\n[release]\nmatch = \"prerelease\"\n{images}{}",
            services(&self.staging_cluster),
            a = self.staging_account,
        );
        let production = format!(
            "account_id = \"{a}\"\nregion = \"{region}\"\n[role]\narn = \"arn:aws:iam::{a}:role/ferry-deploy\"\n[release]\nmatch = \"final\"\n[promote]\nfrom = \"staging\"\n{images}{}",
            services(&self.prod_cluster),
            a = self.prod_account,
        );
        std::fs::write(self.dir.path().join("staging.toml"), staging).unwrap();
        std::fs::write(self.dir.path().join("production.toml"), production).unwrap();
    }

    fn staging_ref(&self, repo: &str, digest: &str) -> String {
        format!("{}/{repo}@{digest}", self.staging.ecr_host())
    }

    fn prod_ref(&self, repo: &str, digest: &str) -> String {
        format!("{}/{repo}@{digest}", self.prod.ecr_host())
    }

    /// Pushes both images of release candidate `tag` to staging (unless `web_only`), each
    /// healthy and reporting `tag`'s version in both environments; returns (web, worker).
    async fn push_set(&self, tag: &str, seed: &str, web_only: bool) -> (String, String) {
        let version = tag.trim_start_matches('v');
        let web = self
            .staging
            .push_image(&self.web, tag, &["--seed", &format!("{seed}1")]);
        let worker = if web_only {
            String::new()
        } else {
            self.staging
                .push_image(&self.worker, tag, &["--seed", &format!("{seed}2")])
        };
        for (repo, d) in [(&self.web, &web), (&self.worker, &worker)] {
            if d.is_empty() {
                continue;
            }
            self.sim
                .image(&self.staging_ref(repo, d), version, "healthy")
                .await;
            self.sim
                .image(&self.prod_ref(repo, d), version, "healthy")
                .await;
        }
        (web, worker)
    }

    fn run(&self, cmd: &str, tag: &str) -> Output {
        let dir = self.dir.path().to_str().unwrap();
        let args = [cmd, "--environments", dir, "--tag", tag, "--output", "json"];
        let env = [
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
        ];
        ferry(&args, &env)
    }

    fn deploy_ok(&self, tag: &str) -> Value {
        let o = self.run("deploy", tag);
        assert_exit(&o, 0);
        serde_json::from_str(&stdout(&o)).unwrap()
    }

    /// What each container of `cluster/service` runs now.
    async fn images_of(&self, cluster: &str, service: &str) -> Vec<(String, String)> {
        let svc = self.sim.describe(cluster, service).await;
        let td = self
            .sim
            .client()
            .describe_task_definition()
            .task_definition(svc.task_definition().unwrap())
            .send()
            .await
            .unwrap();
        td.task_definition()
            .unwrap()
            .container_definitions()
            .iter()
            .map(|c| {
                (
                    c.name().unwrap_or_default().to_string(),
                    c.image().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Asserts both services of `cluster` run the set (web, worker) from `reg`'s repositories.
    async fn assert_runs(&self, cluster: &str, host: &str, web: &str, worker: &str) {
        assert_eq!(
            self.images_of(cluster, "web").await,
            [("web".to_string(), format!("{host}/{}@{web}", self.web))],
            "{cluster}/web"
        );
        assert_eq!(
            self.images_of(cluster, "worker").await,
            [
                (
                    "worker".to_string(),
                    format!("{host}/{}@{worker}", self.worker)
                ),
                ("log".to_string(), SIDECAR.to_string())
            ],
            "{cluster}/worker (the sidecar keeps its image)"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_images_deploy_and_promote_as_a_set_and_roll_back_as_one() {
    let w = World::new().await;
    let (web1, work1) = w.push_set("v1.0.0-rc.1", "100", false).await;

    // The plan names every image of the release and its digest.
    let o = w.run("plan", "v1.0.0-rc.1");
    assert_exit(&o, 0);
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(plan["source"]["digest"], web1.as_str());
    assert_eq!(plan["also"][0]["name"], "worker");
    assert_eq!(plan["also"][0]["source"]["digest"], work1.as_str());

    let before = w.sim.get("/_sim/log").await.as_array().unwrap().len();
    let r = w.deploy_ok("v1.0.0-rc.1");
    assert_eq!(r["outcome"], "deployed", "{r}");
    // web and worker (one cluster) were followed side by side: their reads went out batched,
    // both services in one DescribeServices (the simulator logs how many each call named).
    let log = w.sim.get("/_sim/log").await;
    let sizes: Vec<u64> = log.as_array().unwrap()[before..]
        .iter()
        .filter(|c| c["operation"] == "DescribeServices")
        .map(|c| c["items"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        sizes.iter().filter(|n| **n == 2).count() >= 3,
        "the followers' reads were not batched: DescribeServices named {sizes:?} services"
    );
    assert_eq!(
        r["images"]["worker"],
        w.staging_ref(&w.worker, &work1).as_str()
    );
    w.assert_runs(&w.staging_cluster, &w.staging.ecr_host(), &web1, &work1)
        .await;
    // The record names the whole set (read back by the ORAS client, not by ferry).
    let (_, records) = w.staging.oras_records(&w.web, &web1);
    let set = format!("web@{web1},worker@{work1}");
    assert!(
        records
            .iter()
            .any(|r| r["_annotations"]["dev.ferry.images"] == set.as_str()),
        "{records:?}"
    );

    // Production promotes the set staging verified: both images copied, digests unchanged
    // (skopeo reads them independently).
    let r = w.deploy_ok("v1.0.0");
    assert_eq!(r["outcome"], "deployed", "{r}");
    assert_eq!(w.prod.skopeo_digest(&w.web, "v1.0.0"), Some(web1.clone()));
    assert_eq!(
        w.prod.skopeo_digest(&w.worker, "v1.0.0"),
        Some(work1.clone())
    );
    w.assert_runs(&w.prod_cluster, &w.prod.ecr_host(), &web1, &work1)
        .await;

    // A second release, then a rollback by re-running the first: the whole set goes back.
    let (web2, work2) = w.push_set("v1.1.0-rc.1", "110", false).await;
    assert_eq!(w.deploy_ok("v1.1.0-rc.1")["outcome"], "deployed");
    assert_eq!(w.deploy_ok("v1.1.0")["outcome"], "deployed");
    w.assert_runs(&w.prod_cluster, &w.prod.ecr_host(), &web2, &work2)
        .await;
    let r = w.deploy_ok("v1.0.0");
    assert_eq!(r["kind"], "rollback", "{r}");
    w.assert_runs(&w.prod_cluster, &w.prod.ecr_host(), &web1, &work1)
        .await;
    // And the same release again changes nothing.
    assert_eq!(w.deploy_ok("v1.0.0")["outcome"], "already-deployed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_missing_an_image_or_a_record_of_the_set_is_refused_before_any_change() {
    let w = World::new().await;
    // Only web is pushed under the release tag: refused, naming the missing image; plan
    // says the same; nothing changes.
    let (web1, _) = w.push_set("v1.0.0-rc.1", "100", true).await;
    let before = w.images_of(&w.staging_cluster, "web").await;
    for cmd in ["plan", "deploy"] {
        let o = w.run(cmd, "v1.0.0-rc.1");
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains(
                "release v1.0.0-rc.1 is missing image worker: no image tagged v1.0.0-rc.1 in"
            ) && err.contains(&w.worker)
                && err.contains("nothing was changed"),
            "{cmd}: {err}"
        );
    }
    assert_eq!(w.images_of(&w.staging_cluster, "web").await, before);

    // Staging ran the candidate when it had one image; the worker image came later. Its
    // record does not name the set, so production refuses to promote it.
    w.write_config(false);
    assert_eq!(w.deploy_ok("v1.0.0-rc.1")["outcome"], "deployed");
    w.staging
        .push_image(&w.worker, "v1.0.0-rc.1", &["--seed", "1002"]);
    w.write_config(true);
    let o = w.run("deploy", "v1.0.0");
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(
            "does not name image worker: the set web, worker was not verified together in staging"
        ),
        "{err}"
    );
    assert_eq!(
        w.prod.skopeo_digest(&w.web, "v1.0.0"),
        None,
        "nothing copied"
    );
    let _ = web1;
}
