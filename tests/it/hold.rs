//! Auto scaling held during a rollout (issue 19), through the CLI against the simulator's
//! Application Auto Scaling: suspended while the rollout runs (a scale-out then does not
//! happen), restored after success, after a rollback, after SIGTERM, and after a killed run
//! (by the next run, which says so); a suspension set by hand is kept; `hold_autoscaling =
//! false` is respected.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use serde_json::{json, Value};

use crate::common::*;
use crate::deploy::World;

const MARK: &str = "ferry:autoscaling-hold";

impl World {
    fn scaling(&self) -> aws_sdk_applicationautoscaling::Client {
        let conf = aws_sdk_applicationautoscaling::Config::builder()
            .behavior_version(aws_sdk_applicationautoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_applicationautoscaling::config::Region::new(region()))
            .endpoint_url(&self.sim.endpoint)
            .credentials_provider(aws_sdk_applicationautoscaling::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_applicationautoscaling::Client::from_conf(conf)
    }

    /// Registers the service's scalable target with `scale_in` suspended by hand.
    async fn scalable(&self, scale_in_by_hand: bool) {
        self.scalable_from(scale_in_by_hand, 1).await
    }

    async fn scalable_from(&self, scale_in_by_hand: bool, min: i32) {
        self.scaling()
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(format!("service/{}/{}", self.cluster, self.spec.service))
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .min_capacity(min)
            .max_capacity(6)
            .suspended_state(
                SuspendedState::builder()
                    .dynamic_scaling_in_suspended(scale_in_by_hand)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// The target as the simulator holds it: (in, out, scheduled) suspended, and its tags.
    async fn target(&self) -> ((bool, bool, bool), Value) {
        let state = self.sim.get("/_sim/state").await;
        let t = state["scalableTargets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ResourceId"] == format!("service/{}/{}", self.cluster, self.spec.service))
            .cloned()
            .expect("the scalable target");
        let s = &t["SuspendedState"];
        let b = |k: &str| s[k].as_bool().unwrap_or(false);
        (
            (
                b("DynamicScalingInSuspended"),
                b("DynamicScalingOutSuspended"),
                b("ScheduledScalingSuspended"),
            ),
            t["Tags"].clone(),
        )
    }

    fn spawn_deploy(&self, tag: &str) -> Child {
        ferry_command(
            &[
                "deploy",
                "--environments",
                self.dir.path().to_str().unwrap(),
                "--tag",
                tag,
            ],
            &self.env(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    }

    /// Waits until this run's deployment is under way (a second deployment on the service).
    async fn wait_rolling(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .sim
            .describe(&self.cluster, &self.spec.service)
            .await
            .deployments()
            .len()
            < 2
        {
            assert!(Instant::now() < deadline, "the deployment never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn signal(child: &Child, sig: &str) {
    assert!(std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_scaling_is_held_for_the_rollout_and_given_back_after_success_and_rollback() {
    let w = World::new().await;
    w.scalable(true).await; // a person suspended scale-in: ferry must keep that
    w.release("v1.0.0-rc.1", "100", "healthy").await;
    let o = w.deploy("v1.0.0-rc.1", &[]);
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("auto scaling held for the rollout (suspended out,scheduled)"),
        "{}",
        stderr(&o)
    );
    let (s, tags) = w.target().await;
    assert_eq!(
        s,
        (true, false, false),
        "only the hand-set suspension is left"
    );
    assert!(tags.get(MARK).is_none(), "the mark is gone: {tags}");

    // A release that crashes is rolled back; the hold is given back after the rollback.
    w.sim.wait_idle(&w.cluster, &w.spec.service).await;
    w.release("v1.2.0-rc.1", "120", "crash").await;
    let o = w.deploy("v1.2.0-rc.1", &[]);
    assert_exit(&o, 4);
    let (s, tags) = w.target().await;
    assert_eq!(s, (true, false, false), "restored after the rollback");
    assert!(tags.get(MARK).is_none(), "{tags}");

    // During a slow rollout the hold is in place, and a scale-out does not happen.
    w.release("v1.1.0-rc.1", "110", "slow").await;
    let child = w.spawn_deploy("v1.1.0-rc.1");
    w.wait_rolling().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, tags) = w.target().await;
        if s == (true, true, true) && tags.get(MARK).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "never held: {s:?} {tags}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = w
        .sim
        .control_answer(
            "/_sim/scaling",
            json!({"cluster": w.cluster, "service": w.spec.service, "direction": "out", "by": 2}),
        )
        .await;
    assert_eq!(r["scaled"], false, "{r}");
    assert_eq!(r["reason"], "DynamicScalingOutSuspended", "{r}");
    // SIGTERM (a cancelled job): the hold is given back before ferry exits.
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 5);
    assert!(
        stderr(&o).contains("auto scaling restored"),
        "{}",
        stderr(&o)
    );
    let (s, tags) = w.target().await;
    assert_eq!(s, (true, false, false), "restored on SIGTERM");
    assert!(tags.get(MARK).is_none(), "{tags}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_a_killed_run_left_is_shown_and_given_back_by_the_next_run() {
    let w = World::new().await;
    w.scalable(false).await;
    w.release("v1.0.0-rc.1", "100", "healthy").await;
    // A run whose lease lapses quickly, killed (a lost runner) while it holds auto scaling.
    let child = ferry_command(
        &[
            "deploy",
            "--environments",
            w.dir.path().to_str().unwrap(),
            "--tag",
            "v1.0.0-rc.1",
        ],
        &[
            w.env(),
            vec![
                ("FERRY_CLAIM_TTL_SECONDS", "2".into()),
                ("FERRY_CLAIM_RENEW_SECONDS", "1".into()),
            ],
        ]
        .concat(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.target().await.0 != (true, true, true) {
        assert!(Instant::now() < deadline, "never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "-KILL");
    let mut child = child;
    let _ = child.wait();
    let (s, tags) = w.target().await;
    assert_eq!(s, (true, true, true), "a killed run restores nothing");
    assert!(tags.get(MARK).is_some(), "{tags}");

    let st = ferry(
        &[
            "status",
            "staging",
            "--environments",
            w.dir.path().to_str().unwrap(),
        ],
        &w.env(),
    );
    assert!(
        stdout(&st).contains("AUTO SCALING HELD")
            && stdout(&st).contains("suspended in,out,scheduled and did not restore it"),
        "{}\n{}",
        stdout(&st),
        stderr(&st)
    );

    // The next run, once ECS settled and the killed run's lease lapsed, gives it back first.
    w.sim.wait_idle(&w.cluster, &w.spec.service).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.release("v1.1.0-rc.1", "110", "healthy").await;
    let o = ferry(
        &[
            "deploy",
            "--environments",
            w.dir.path().to_str().unwrap(),
            "--tag",
            "v1.1.0-rc.1",
        ],
        &[w.env(), vec![("FERRY_CLAIM_SKEW_SECONDS", "0".into())]].concat(),
    );
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("restored auto scaling that an earlier run"),
        "{}",
        stderr(&o)
    );
    let (s, tags) = w.target().await;
    assert_eq!(s, (false, false, false), "{}", stderr(&o));
    assert!(tags.get(MARK).is_none(), "{tags}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_autoscaling_false_leaves_scaling_alone() {
    let w = World::new().await;
    let file = w.dir.path().join("staging.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{text}\n[deploy]\nhold_autoscaling = false\n"),
    )
    .unwrap();
    w.scalable(false).await;
    w.release("v1.0.0-rc.1", "100", "slow").await;
    let child = w.spawn_deploy("v1.0.0-rc.1");
    w.wait_rolling().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, tags) = w.target().await;
    assert_eq!(s, (false, false, false), "not held");
    assert!(tags.get(MARK).is_none(), "{tags}");
    // Scale-out goes on during the rollout (ECS only turns scale-in off).
    let r = w
        .sim
        .control_answer(
            "/_sim/scaling",
            json!({"cluster": w.cluster, "service": w.spec.service, "direction": "out", "by": 1}),
        )
        .await;
    assert_eq!(r["scaled"], true, "{r}");
    signal(&child, "-TERM");
    let _ = child.wait_with_output();
}

/// A smoke endpoint that answers like the simulator's app, each answer 400 ms late: a window
/// in which a scaling activity lands during the smoke checks.
fn slow_front(upstream: &str) -> String {
    let upstream = upstream
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        for conn in listener.incoming().take(200) {
            let Ok(mut conn) = conn else { continue };
            let up = upstream.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                std::thread::sleep(Duration::from_millis(400));
                let Ok(mut u) = std::net::TcpStream::connect(&up) else {
                    return;
                };
                let _ = write!(u, "GET {path} HTTP/1.0\r\nHost: {up}\r\n\r\n");
                let mut answer = Vec::new();
                let _ = u.read_to_end(&mut answer);
                let _ = conn.write_all(&answer);
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Scale-in is off while an ECS deployment is in progress, not during ferry's smoke checks:
/// a scale-in to zero then stops the new tasks, and the release fails. With the hold it does
/// not happen, and the release passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_scale_in_during_the_smoke_checks_fails_a_release_without_the_hold_and_not_with_it() {
    for held in [false, true] {
        let w = World::new().await;
        let file = w.dir.path().join("staging.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let health = w.sim.health_url(&w.cluster, &w.spec.service);
        let front = slow_front(&w.sim.endpoint);
        let path = health.splitn(4, '/').nth(3).unwrap().to_string();
        let text = text.replace(&health, &format!("{front}/{path}"));
        let text = format!("{text}consecutive = 6\n");
        let text = if held {
            text
        } else {
            format!("{text}[deploy]\nhold_autoscaling = false\n")
        };
        std::fs::write(&file, text).unwrap();
        w.scalable_from(false, 0).await;
        w.release("v1.0.0-rc.1", "100", "healthy").await;
        let mut child = w.spawn_deploy("v1.0.0-rc.1");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("running 1 smoke check(s)") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the smoke checks never started");
        let r = w
            .sim
            .control_answer(
                "/_sim/scaling",
                json!({"cluster": w.cluster, "service": w.spec.service, "desired": 0}),
            )
            .await;
        let status = child.wait().unwrap();
        let err = reader.join().unwrap();
        if held {
            assert_eq!(r["reason"], "DynamicScalingInSuspended", "{r}");
            assert_eq!(status.code(), Some(0), "held: the release passes\n{err}");
        } else {
            assert_eq!(r["scaled"], true, "{r}");
            assert_ne!(
                status.code(),
                Some(0),
                "not held: the scale-in fails the release\n{err}"
            );
            assert!(err.contains("smoke"), "{err}");
        }
    }
}
