//! Claims are leases, not locks (issue 16): a run interrupted by SIGINT or SIGTERM releases
//! its claim and says what it leaves in flight; a SIGKILLed run's claim lapses on its own
//! (short lease durations here, the checks unchanged); a re-run attempt of the same workflow
//! run takes over at once; `--wait-for-idle` waits for a live claim; and production promotes
//! an rc whose killed staging run was redone.
//!
//! Each rollout here is slow on purpose (the simulator starts its tasks in a few seconds), so
//! that a signal lands mid-rollout.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// How long a task of a slow release takes to start in the simulator.
const SLOW_START: f64 = 10.0;

/// The memory tests' world (both environments run a baseline seeded outside ferry), with the
/// lease tests' ways of running ferry.
struct World(crate::memory::World);

impl std::ops::Deref for World {
    type Target = crate::memory::World;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl World {
    async fn new() -> World {
        World(crate::memory::World::new(None).await)
    }

    /// Pushes a release candidate whose tasks take `SLOW_START` seconds to start in staging
    /// (and start at once in production).
    async fn slow_rc(&self, tag: &str, seed: &str) {
        let digest = self
            .staging
            .push_image(&self.spec.repo, tag, &["--seed", seed]);
        let version = tag.trim_start_matches('v');
        let staging = format!("{}/{}@{digest}", self.staging.ecr_host(), self.spec.repo);
        let prod = format!("{}/{}@{digest}", self.prod.ecr_host(), self.spec.repo);
        self.sim
            .control(
                "/_sim/images",
                serde_json::json!({"image": staging, "version": version, "behavior": "healthy", "start_seconds": SLOW_START}),
            )
            .await;
        self.sim.image(&prod, version, "healthy").await;
    }

    fn env(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut e = vec![
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
            ("GITHUB_RUN_ID", String::new()),
        ];
        e.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        e
    }

    fn args<'a>(&'a self, command: &'a str, tag: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            command,
            "--environments",
            self.dir.path().to_str().unwrap(),
            "--tag",
            tag,
        ];
        a.extend_from_slice(extra);
        a
    }

    fn run(
        &self,
        command: &str,
        tag: &str,
        extra: &[&str],
        env: &[(&'static str, &str)],
    ) -> Output {
        ferry(&self.args(command, tag, extra), &self.env(env))
    }

    /// Starts `ferry deploy --tag <tag>` and returns once ferry follows staging's rollout
    /// (`UpdateService` answered).
    fn deploy_until_rolling(&self, tag: &str, env: &[(&'static str, &str)]) -> Deploying {
        Deploying::until(
            ferry_command(&self.args("deploy", tag, &[]), &self.env(env)),
            |line| line.contains("(deployment ecs-svc/"),
            Duration::from_secs(60),
        )
    }

    /// Waits for staging's rollout to end; returns when it did.
    async fn staging_idle(&self) -> Instant {
        self.sim
            .wait_idle(&self.staging_cluster, &self.spec.service)
            .await;
        Instant::now()
    }

    /// Staging's repository tags that are claims.
    async fn claims(&self) -> Vec<String> {
        self.staging.claim_tags(&self.spec.repo).await
    }

    /// The manifest a staging tag names: its bytes.
    async fn manifest(&self, tag: &str) -> Vec<u8> {
        reqwest::Client::new()
            .get(format!(
                "{}/v2/{}/manifests/{tag}",
                self.staging.url(),
                self.spec.repo
            ))
            .basic_auth(&self.staging.user, Some(&self.staging.password))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// Writes `bytes` back under a staging tag.
    async fn put_manifest(&self, tag: &str, bytes: Vec<u8>) {
        let r = reqwest::Client::new()
            .put(format!(
                "{}/v2/{}/manifests/{tag}",
                self.staging.url(),
                self.spec.repo
            ))
            .basic_auth(&self.staging.user, Some(&self.staging.password))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{r:?}");
    }
}

/// Asserts the deploy ended well (deployed, or already deployed when ECS finished the
/// interrupted run's rollout).
#[track_caller]
fn assert_deployed(o: &Output) {
    assert_exit(o, 0);
    let err = stderr(o);
    let out = stdout(o);
    assert!(
        out.contains("deployed") || err.contains("already deployed"),
        "{out}\n{err}"
    );
}

/// SIGINT or SIGTERM mid-rollout: the claim is released before ferry exits, the message names
/// the deployment still rolling out and says a re-run is safe, and a plain re-run right after
/// ECS finished deploys (no lease has to lapse).
async fn interrupted_mid_rollout(sig: &str, said: &str) {
    let w = World::new().await;
    w.slow_rc("v1.1.0-rc.1", "111").await;
    let run = w.deploy_until_rolling("v1.1.0-rc.1", &[]);
    assert_eq!(w.claims().await.len(), 1, "the run holds its claim");
    let (code, err) = run.signal(sig);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains(&format!("stopped by {said}"))
            && err.contains("is still rolling out")
            && err.contains("deployment ecs-svc/")
            && err.contains("released its claim on the environment")
            && err.contains("a re-run is safe")
            && err.contains("--wait-for-idle"),
        "{err}"
    );
    assert_eq!(w.claims().await, Vec::<String>::new(), "the claim is gone");
    let idle = w.staging_idle().await;
    let again = w.run("deploy", "v1.1.0-rc.1", &[], &[]);
    assert_deployed(&again);
    assert!(idle.elapsed() < Duration::from_secs(120));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_rollout_releases_the_claim_and_a_rerun_deploys() {
    interrupted_mid_rollout("INT", "an interrupt").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_rollout_releases_the_claim_and_a_rerun_deploys() {
    interrupted_mid_rollout("TERM", "SIGTERM").await;
}

/// A short lease, for the killed runs (the checks are the same as with the defaults).
const SHORT_LEASE: [(&str, &str); 3] = [
    ("FERRY_CLAIM_TTL_SECONDS", "3"),
    ("FERRY_CLAIM_RENEW_SECONDS", "1"),
    ("FERRY_CLAIM_SKEW_SECONDS", "1"),
];

/// SIGKILL mid-rollout: nothing is released, but the claim was a lease: renewed while the run
/// lived (a plan past its first expiry still sees it), and lapsing soon after the kill, so
/// that a re-run deploys within two minutes of ECS finishing.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_rollout_leaves_a_lease_that_lapses_soon() {
    let w = World::new().await;
    w.slow_rc("v1.2.0-rc.1", "121").await;
    let run = w.deploy_until_rolling("v1.2.0-rc.1", &SHORT_LEASE);
    // Past the lease and its margin since the claim was made: only renewals keep it live.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let p = w.run("plan", "v1.2.0-rc.1", &[], &SHORT_LEASE);
    assert_exit(&p, 3);
    assert!(
        stderr(&p).contains("another run is deploying v1.2.0-rc.1"),
        "{}",
        stderr(&p)
    );
    let _ = run.signal("KILL");
    let idle = w.staging_idle().await;
    let deployed = loop {
        let o = w.run("deploy", "v1.2.0-rc.1", &[], &SHORT_LEASE);
        if o.status.code() == Some(0) {
            assert_deployed(&o);
            break stderr(&o);
        }
        assert_exit(&o, 3);
        assert!(
            stderr(&o).contains("another run is deploying"),
            "{}",
            stderr(&o)
        );
        assert!(
            idle.elapsed() < Duration::from_secs(120),
            "still refused two minutes after ECS finished: {}",
            stderr(&o)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // A whole lease after it lapsed, the killed run's claim is removed by the next run, so
    // dead claims do not pile up in the repository.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let o = w.run("deploy", "v1.2.0-rc.1", &[], &SHORT_LEASE);
    assert_exit(&o, 0);
    let said = format!("{deployed}{}", stderr(&o));
    assert!(said.contains("removed the lapsed claim"), "{said}");
    assert_eq!(w.claims().await, Vec::<String>::new());
}

/// A re-run attempt of the same workflow run takes over its earlier attempt's live claim at
/// once (the default lease: attempt 1 was killed seconds ago).
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_attempt_takes_over_the_claim_of_its_earlier_attempt() {
    let w = World::new().await;
    w.slow_rc("v1.3.0-rc.1", "131").await;
    let run_id = format!("{}", 9_000_000 + std::process::id());
    let attempt = |n: &'static str| {
        [
            ("GITHUB_RUN_ID", run_id.as_str()),
            ("GITHUB_RUN_ATTEMPT", n),
        ]
    };
    let _ = w
        .deploy_until_rolling("v1.3.0-rc.1", &attempt("1"))
        .signal("KILL");
    let claims = w.claims().await;
    assert_eq!(claims.len(), 1, "the killed attempt left its claim");
    w.staging_idle().await;
    // Another workflow run is refused: the lease is live.
    let other = w.run("plan", "v1.3.0-rc.1", &[], &[]);
    assert_exit(&other, 3);
    let o = w.run("deploy", "v1.3.0-rc.1", &[], &attempt("2"));
    assert_deployed(&o);
    assert!(
        stderr(&o).contains("took over v1.3.0-rc.1 from attempt 1 of this workflow run")
            && stderr(&o).contains(&claims[0]),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.claims().await, Vec::<String>::new());
}

/// `--wait-for-idle` waits for another run's live claim, as for a deployment in flight, then
/// deploys.
#[tokio::test(flavor = "multi_thread")]
async fn wait_for_idle_waits_for_a_live_claim() {
    let w = World::new().await;
    w.slow_rc("v1.4.0-rc.1", "141").await;
    let lease = [
        ("FERRY_CLAIM_TTL_SECONDS", "10"),
        ("FERRY_CLAIM_RENEW_SECONDS", "1"),
        ("FERRY_CLAIM_SKEW_SECONDS", "1"),
    ];
    let _ = w.deploy_until_rolling("v1.4.0-rc.1", &lease).signal("KILL");
    let t0 = Instant::now();
    let o = w.run("deploy", "v1.4.0-rc.1", &["--wait-for-idle"], &lease);
    assert_deployed(&o);
    let err = stderr(&o);
    assert!(err.contains("waiting for another run's claim"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(120));
}

/// A staging run of an rc is killed and redone (a re-run attempt); its dead claim never makes
/// production call the rc "deploying now", even when it is still in the repository (a
/// takeover that could not remove it): the redo's record started after it.
#[tokio::test(flavor = "multi_thread")]
async fn production_promotes_an_rc_whose_killed_staging_run_was_redone() {
    let w = World::new().await;
    w.slow_rc("v1.5.0-rc.1", "151").await;
    let run_id = format!("{}", 8_000_000 + std::process::id());
    let attempt = |n: &'static str| {
        [
            ("GITHUB_RUN_ID", run_id.as_str()),
            ("GITHUB_RUN_ATTEMPT", n),
        ]
    };
    let first = w.deploy_until_rolling("v1.5.0-rc.1", &attempt("1"));
    let claim = w.claims().await.pop().expect("the run's claim");
    let saved = w.manifest(&claim).await;
    let _ = first.signal("KILL");
    w.staging_idle().await;
    let redo = w.run("deploy", "v1.5.0-rc.1", &[], &attempt("2"));
    assert_deployed(&redo);
    // The dead claim, back in the repository, still within its lease.
    w.put_manifest(&claim, saved).await;
    assert_eq!(w.claims().await, vec![claim]);
    let o = w.run("deploy", "v1.5.0", &["--output", "json"], &[]);
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["outcome"], "deployed", "{report}");
    assert!(!stderr(&o).contains("deploying now"), "{}", stderr(&o));
}

/// Issue 21: a deploy with no other claim spends no settle time on its critical path. The
/// window is 60 s here; alone, the run marks its claim held and goes on, so in the
/// simulator's call log the first change comes within seconds of the first read of the
/// service (the log's own clock, not ferry's wall time). Waiting out the window put it 60 s
/// after. The claim was marked held (a run that claims meanwhile refuses at once), and it is
/// gone after the run.
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_with_no_other_claim_spends_no_settle_time() {
    let w = crate::memory::World::new(None).await;
    w.rc("v6.0.0-rc.1", "601", "healthy", "healthy").await;
    let before = w.sim.get("/_sim/log").await.as_array().unwrap().len();
    let o = w.run(
        "deploy",
        "v6.0.0-rc.1",
        &["--output", "json"],
        &[("FERRY_CLAIM_SETTLE_MS", "60000".into())],
    );
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("no other run claimed staging: going on"),
        "{err}"
    );
    let log = w.sim.get("/_sim/log").await;
    let calls: Vec<(f64, &str)> = log.as_array().unwrap()[before..]
        .iter()
        .map(|c| (c["at"].as_f64().unwrap(), c["operation"].as_str().unwrap()))
        .collect();
    let change = calls
        .iter()
        .position(|(_, op)| *op == "RegisterTaskDefinition")
        .unwrap_or_else(|| panic!("no RegisterTaskDefinition in {calls:?}"));
    let first_read = calls[..change]
        .iter()
        .find(|(_, op)| *op == "DescribeServices")
        .unwrap_or_else(|| panic!("the run changed its service before reading it: {calls:?}"));
    let gap = calls[change].0 - first_read.0;
    assert!(
        gap < 20.0,
        "the first change came {gap:.2}s after the first read: the run waited out the 60 s settle window\n{calls:?}\n{err}"
    );
    assert_eq!(
        w.staging.claim_tags(&w.spec.repo).await,
        Vec::<String>::new(),
        "the run left its claim"
    );
}

/// A deploy the plan refuses is refused at once, not after the settle window (60 s here): a
/// failed preparation cuts the window short, reads the claims once (another run's live
/// claim would still be the answer) and removes its own claim.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_plan_does_not_wait_out_the_settle_window() {
    let w = crate::memory::World::new(None).await;
    w.rc("v6.1.0-rc.1", "611", "healthy", "healthy").await;
    let t0 = Instant::now();
    let o = w.run(
        "deploy",
        "v6.1.0",
        &[],
        &[("FERRY_CLAIM_SETTLE_MS", "60000".into())],
    );
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("claimed production") && err.contains("v6.1.0-rc.1, never deployed"),
        "{err}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(40),
        "the refusal waited out the 60 s settle window: {err}"
    );
    assert_eq!(
        w.prod.claim_tags(&w.spec.repo).await,
        Vec::<String>::new(),
        "the refused run left its claim"
    );
}
