//! A release in waves stopped from outside: SIGTERM while both targets of one wave roll out
//! (every claim released, each rollout named by its target), and SIGKILL in wave 2 (the claim
//! is left to lapse as a lease; a re-run finishes the release in both regions).

use std::cell::RefCell;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::waves::{st, states, World, EU};

/// Rollouts of about 20 s, so that a signal lands mid-way.
async fn slow_rollouts(w: &World) {
    w.sim
        .control(
            "/_sim/timing",
            serde_json::json!({"task_start_seconds": 8.0}),
        )
        .await;
}

fn deploy_args<'a>(w: &'a World, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "deploy",
        "--environments",
        w.dir.path().to_str().unwrap(),
        "--tag",
        "v1.0.0",
    ];
    a.extend_from_slice(extra);
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_one_wave_rolls_out_in_two_regions_releases_both_claims() {
    let w = World::new().await;
    w.write_config("[deploy]\nwaves = [[\"us-east-1\", \"eu-west-1\"]]\n");
    let v1 = w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");
    slow_rollouts(&w).await;
    // Both targets of the one wave are rolling out.
    let seen = RefCell::new([false, false]);
    let run = Deploying::until(
        ferry_command(&deploy_args(&w, &[]), &w.env()),
        |line| {
            let mut seen = seen.borrow_mut();
            if line.contains("(deployment ecs-svc/") {
                seen[0] |= line.contains("us-east-1:");
                seen[1] |= line.contains("eu-west-1:");
            }
            seen[0] && seen[1]
        },
        Duration::from_secs(120),
    );
    assert_eq!(
        w.east.claim_tags(&w.repo).await.len(),
        1,
        "us-east-1's claim"
    );
    assert_eq!(
        w.west.claim_tags(&w.repo).await.len(),
        1,
        "eu-west-1's claim"
    );
    let (code, err) = run.signal("TERM");
    assert_eq!(code, Some(5), "{err}");
    let cluster = w.prod_cluster();
    for target in ["us-east-1", EU] {
        let rolling = format!("{target}:{cluster}/web: deployment ecs-svc/");
        assert!(
            err.lines()
                .any(|l| l.contains("stopped by SIGTERM") && l.contains(&rolling)),
            "the message names {target}'s rollout: {err}"
        );
    }
    assert!(
        err.contains("is still rolling out")
            && err.contains("released its claim")
            && err.contains("a re-run is safe"),
        "{err}"
    );
    w.assert_no_claims().await;
    // A re-run with --wait-for-idle waits for both rollouts ECS is finishing: done everywhere.
    let o = ferry(
        &deploy_args(&w, &["--wait-for-idle", "--output", "json"]),
        &w.env(),
    );
    assert_exit(&o, 0);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        states(&r),
        [
            st("us-east-1", 1, "already-deployed"),
            st(EU, 1, "already-deployed")
        ],
        "{r}"
    );
    assert_eq!(w.runs(&region()).await, v1);
    assert_eq!(w.runs(EU).await, v1);
}

/// A short lease, so that a killed run's claim lapses within seconds.
const SHORT_LEASE: [(&str, &str); 3] = [
    ("FERRY_CLAIM_TTL_SECONDS", "3"),
    ("FERRY_CLAIM_RENEW_SECONDS", "1"),
    ("FERRY_CLAIM_SKEW_SECONDS", "1"),
];

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_in_wave_two_leaves_a_lease_and_a_rerun_finishes_both_regions() {
    let w = World::new().await;
    let v1 = w.rc("v1.0.0-rc.1", "100", "healthy").await;
    assert_eq!(w.deploy("v1.0.0-rc.1", 0)["outcome"], "deployed");
    slow_rollouts(&w).await;
    let mut env = w.env();
    env.extend(SHORT_LEASE.iter().map(|(k, v)| (*k, v.to_string())));
    let run = Deploying::until(
        ferry_command(&deploy_args(&w, &[]), &env),
        |line| line.contains("eu-west-1:") && line.contains("(deployment ecs-svc/"),
        Duration::from_secs(120),
    );
    let _ = run.signal("KILL");
    // Nothing was released: eu-west-1's claim stays, a lease; us-east-1's ended with wave 1.
    let left = w.west.claim_tags(&w.repo).await;
    assert_eq!(left.len(), 1, "the killed run's claim in eu-west-1");
    assert_eq!(w.east.claim_tags(&w.repo).await, Vec::<String>::new());
    let svc = w.sim.describe_in(EU, &w.prod_cluster(), "web").await;
    assert!(
        svc.deployments().len() > 1,
        "eu-west-1 was still rolling out: {svc:?}"
    );

    // A re-run waits for the lease to lapse and ECS to finish, then finishes the release.
    let o = ferry(
        &deploy_args(&w, &["--wait-for-idle", "--output", "json"]),
        &env,
    );
    assert_exit(&o, 0);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["outcome"], "already-deployed", "{r}");
    assert_eq!(
        states(&r),
        [
            st("us-east-1", 1, "already-deployed"),
            st(EU, 2, "already-deployed")
        ],
        "{r}"
    );
    // Consistent: both regions run the release, each has its record of it (read back by the
    // ORAS client), status agrees, and the re-run left no claim of its own.
    assert_eq!(w.runs(&region()).await, v1);
    assert_eq!(w.runs(EU).await, v1);
    for (name, reg) in [("us-east-1", &w.east), (EU, &w.west)] {
        let (_, records) = reg.oras_records(&w.repo, &v1);
        assert!(
            records
                .iter()
                .any(|x| x["tag"] == "v1.0.0" && x["result"] == "succeeded"),
            "{name}: {records:?}"
        );
    }
    let remaining = w.west.claim_tags(&w.repo).await;
    assert!(remaining.iter().all(|t| left.contains(t)), "{remaining:?}");
    assert_eq!(w.east.claim_tags(&w.repo).await, Vec::<String>::new());
    let dir = w.dir.path().to_str().unwrap();
    let o = ferry(
        &["status", "--environments", dir, "--output", "json"],
        &w.env(),
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
    assert_eq!(prod.len(), 2, "{status}");
    for e in prod {
        assert_eq!(e["live_release"], "v1.0.0", "{e}");
        assert!(!e["drift"].to_string().contains("targets differ"), "{e}");
    }
}
