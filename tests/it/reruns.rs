//! The paths people take after the first run (issue 16): the same release re-run again and
//! again in each environment (CLI, `release` event re-runs, dispatch), a rollback to a release
//! the environment ran before ferry's first record, and a re-run whose release tag moved.
//!
//! The memory tests' world: both environments run a baseline seeded outside ferry (v0.9.0 in
//! production, v0.9.0-rc.1 in staging), as an adopting team's services do, and the app reports
//! the release candidate it was built as, in production too.

use std::process::Output;

use serde_json::Value;

use crate::common::*;
use crate::memory::{release_event, World};

/// A `workflow_dispatch` event naming `tag`, as GitHub writes it.
fn dispatch_event(dir: &std::path::Path, tag: &str) -> std::path::PathBuf {
    let path = dir.join(format!("dispatch-{tag}.json"));
    std::fs::write(
        &path,
        serde_json::json!({"inputs": {"tag": tag}, "repository": {"full_name": "o/r"}}).to_string(),
    )
    .unwrap();
    path
}

/// A revision of production's service family running `image`, registered outside ferry
/// (the service is not updated: it is history).
async fn register_revision(w: &World, image: &str) {
    let ecs = w.sim.client();
    let svc = w.sim.describe(&w.prod_cluster, &w.spec.service).await;
    let out = ecs
        .describe_task_definition()
        .task_definition(svc.task_definition().unwrap())
        .send()
        .await
        .unwrap();
    let td = out.task_definition().unwrap();
    let mut c = td.container_definitions()[0].clone();
    c.image = Some(image.to_string());
    ecs.register_task_definition()
        .family(td.family().unwrap())
        .container_definitions(c)
        .send()
        .await
        .unwrap();
}

/// One re-run of `tag`: the n-th of a rotation of CLI, `release` event re-runs (attempts 2,
/// 3, …) and dispatch, as people start them.
fn rerun(w: &World, tag: &str, n: usize) -> Output {
    let (event, env) = match n % 3 {
        0 => return w.deploy(tag, &[]),
        1 => (
            release_event(w.dir.path(), tag),
            vec![
                ("GITHUB_EVENT_NAME", "release".into()),
                ("GITHUB_RUN_ATTEMPT", (n + 1).to_string()),
            ],
        ),
        _ => (
            dispatch_event(w.dir.path(), tag),
            vec![("GITHUB_EVENT_NAME", "workflow_dispatch".into())],
        ),
    };
    let args = ["--event", event.to_str().unwrap(), "--output", "json"];
    w.run("deploy", "", &args, &env)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_reruns_in_each_environment_say_already_deployed() {
    let w = World::new(None).await;
    let rc = w.rc("v1.1.0-rc.1", "110", "healthy", "healthy").await;
    w.deploy_ok("v1.1.0-rc.1", 0);
    let first = w.deploy_ok("v1.1.0", 0);
    assert_eq!(first["outcome"], "deployed");
    assert_eq!(
        w.prod_version().await,
        "1.1.0-rc.1",
        "the app reports its rc"
    );
    for (tag, image) in [
        ("v1.1.0-rc.1", w.staging_image(&rc)),
        ("v1.1.0", w.prod_image(&rc)),
    ] {
        for n in 0..5 {
            let o = rerun(&w, tag, n);
            assert_exit(&o, 0);
            let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert_eq!(
                (report["outcome"].as_str(), report["kind"].as_str()),
                (Some("already-deployed"), Some("redeploy")),
                "{tag}, re-run {}: {report}\n{}",
                n + 1,
                stderr(&o)
            );
            assert_eq!(report["image"], image.as_str(), "{tag}, re-run {}", n + 1);
            let smoke = report["smoke"].as_array().unwrap();
            assert!(
                !smoke.is_empty() && smoke.iter().all(|s| s["ok"] == true),
                "{tag}, re-run {}: the smoke gate passed: {report}",
                n + 1
            );
        }
    }
    // Every production record of the digest carries what the bytes were built as.
    let (_, recs) = w.prod.oras_records(&w.spec.repo, &rc);
    assert_eq!(recs.len(), 6, "one deploy and five re-runs: {recs:?}");
    assert!(
        recs.iter().all(|r| r["built_as"] == "v1.1.0-rc.1"),
        "{recs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_ran_before_ferry_is_a_rollback_by_rerun_and_by_dispatch() {
    let w = World::new(None).await;
    let base = w
        .prod
        .skopeo_digest(&w.spec.repo, "v0.9.0")
        .expect("the baseline release in production's repository");
    // Built for production before ferry (other bytes than staging's rc): it reports 0.9.0.
    w.sim.image(&w.prod_image(&base), "0.9.0", "healthy").await;
    w.rc("v1.0.0-rc.1", "100", "healthy", "healthy").await;
    w.deploy_ok("v1.0.0-rc.1", 0);
    w.deploy_ok("v1.0.0", 0);
    assert_eq!(w.prod_version().await, "1.0.0-rc.1");

    // A first attempt of v0.9.0's release event starting late is still refused.
    let ev = release_event(w.dir.path(), "v0.9.0");
    let ev = ev.to_str().unwrap();
    let o = w.run(
        "deploy",
        "",
        &["--event", ev],
        &[("GITHUB_RUN_ATTEMPT", "1".into())],
    );
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("started late"), "{}", stderr(&o));

    // The plan says where it learned that production ran v0.9.0.
    let p = w.plan("v0.9.0", &[]);
    assert_exit(&p, 0);
    let plan: Value = serde_json::from_str(&stdout(&p)).unwrap();
    assert_eq!(plan["kind"], "rollback", "{plan}");
    assert_eq!(plan["digest_from"], "before-ferry", "{plan}");
    assert_eq!(plan["downgrade"], false);
    assert_eq!(plan["source"]["digest"], base.as_str());
    assert!(
        plan["notes"][0]
            .as_str()
            .unwrap_or_default()
            .contains("ferry's first deploy of v1.0.0 replaced it"),
        "{plan}"
    );

    // Re-running v0.9.0's release workflow run: a rollback, exactly the baseline's digest.
    let o = w.run(
        "deploy",
        "",
        &["--event", ev, "--output", "json"],
        &[("GITHUB_RUN_ATTEMPT", "2".into())],
    );
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["kind"], "rollback", "{report}");
    assert_eq!(report["image"], w.prod_image(&base).as_str());
    assert_eq!(w.prod_version().await, "0.9.0");

    // Staging, by dispatch: its baseline rc is what ferry's first staging deploy replaced.
    let sbase = w
        .staging
        .skopeo_digest(&w.spec.repo, "v0.9.0-rc.1")
        .unwrap();
    let dispatch = dispatch_event(w.dir.path(), "v0.9.0-rc.1");
    let o = w.run(
        "deploy",
        "",
        &["--event", dispatch.to_str().unwrap(), "--output", "json"],
        &[("GITHUB_EVENT_NAME", "workflow_dispatch".into())],
    );
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["kind"], "rollback", "{report}\n{}", stderr(&o));
    assert_eq!(report["image"], w.staging_image(&sbase).as_str());

    // Production ran v0.8.0 long before (a revision of the service's family, by tag): no
    // record of ferry's names it, the task-definition history does.
    let v080 = w.prod.push_image(&w.spec.repo, "v0.8.0", &["--seed", "80"]);
    w.sim.image(&w.prod_image(&v080), "0.8.0", "healthy").await;
    register_revision(&w, &format!("{}/{}:v0.8.0", w.prod.ecr_host(), w.spec.repo)).await;
    let o = w.run(
        "deploy",
        "",
        &[
            "--event",
            dispatch_event(w.dir.path(), "v0.8.0").to_str().unwrap(),
            "--output",
            "json",
        ],
        &[("GITHUB_EVENT_NAME", "workflow_dispatch".into())],
    );
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["kind"], "rollback", "{report}\n{}", stderr(&o));
    assert_eq!(report["image"], w.prod_image(&v080).as_str());
    assert!(
        stderr(&o).contains("by its task-definition history"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.prod_version().await, "0.8.0");

    // A release neither ferry nor the history knows is still a downgrade.
    w.prod.push_image(&w.spec.repo, "v0.7.0", &["--seed", "70"]);
    let o = w.run(
        "deploy",
        "",
        &[
            "--event",
            dispatch_event(w.dir.path(), "v0.7.0").to_str().unwrap(),
        ],
        &[("GITHUB_EVENT_NAME", "workflow_dispatch".into())],
    );
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("allow-downgrade = true"),
        "the hint can be followed from GitHub: {}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staging_rerun_of_a_moved_rc_tag_says_which_digest_it_keeps() {
    let w = World::new(None).await;
    let verified = w.rc("v1.2.0-rc.1", "120", "healthy", "healthy").await;
    w.deploy_ok("v1.2.0-rc.1", 0);
    // Someone pushes other bytes under the same rc tag.
    let moved = w
        .staging
        .push_image(&w.spec.repo, "v1.2.0-rc.1", &["--seed", "121"]);
    assert_ne!(moved, verified);

    let o = w.deploy("v1.2.0-rc.1", &[]);
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["outcome"], "already-deployed", "{report}");
    assert_eq!(report["image"], w.staging_image(&verified).as_str());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("v1.2.0-rc.1 now points at {moved}"))
            && err.contains(&format!("this run keeps {verified}")),
        "the moved tag is reported with both digests: {err}"
    );
    let p = w.plan("v1.2.0-rc.1", &[]);
    let plan: Value = serde_json::from_str(&stdout(&p)).unwrap();
    assert!(
        plan["notes"][0]
            .as_str()
            .unwrap_or_default()
            .contains("a release tag never changes meaning"),
        "{plan}"
    );
}
