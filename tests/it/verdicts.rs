//! Verdicts that hold against ECS as it really behaves (issue: eventual consistency, missing
//! permissions, throttles, late failures): each test makes the simulator behave as the ECS
//! documentation says ECS can, and checks ferry's exit code, its verdict, and that the final
//! revision ferry reports is the one ECS says the service runs.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// How the test's service is built.
#[derive(Default, Clone, Copy)]
pub(crate) struct Shape {
    load_balancer: bool,
    alarm: bool,
}

/// A staging service on its own simulator, running a healthy baseline.
pub(crate) struct Lab {
    spec: EnvSpec,
    dir: tempfile::TempDir,
    registry: Registry,
    sim: EcsSim,
    cluster: String,
    baseline_td: String,
    baseline_image: String,
}

impl Lab {
    pub(crate) async fn new(shape: Shape, rollout_timeout: Option<u64>) -> Lab {
        Self::with_smoke(shape, rollout_timeout, None).await
    }

    /// With the smoke check pointed at `smoke` instead of the simulator's app endpoint.
    async fn with_smoke(shape: Shape, rollout_timeout: Option<u64>, smoke: Option<String>) -> Lab {
        let mut spec = EnvSpec::new();
        let sim = EcsSim::start();
        let cluster = format!("{}-staging", spec.cluster);
        spec.staging_smoke = Some(smoke.unwrap_or_else(|| sim.health_url(&cluster, &spec.service)));
        let dir = spec.write();
        if let Some(t) = rollout_timeout {
            let path = dir.path().join("staging.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                &path,
                format!("{text}\n[deploy]\nrollout_timeout_seconds = {t}\n"),
            )
            .unwrap();
        }
        let registry = Registry::for_account(&spec.staging_account);
        let base = registry.push_image(&spec.repo, "v0.9.0-rc.1", &["--seed", "900"]);
        let baseline_image = format!("{}/{}@{base}", registry.ecr_host(), spec.repo);
        sim.image(&baseline_image, "0.9.0-rc.1", "healthy").await;
        let baseline_td =
            create_service(&sim, &cluster, &spec.service, &baseline_image, shape).await;
        Lab {
            spec,
            dir,
            registry,
            sim,
            cluster,
            baseline_td,
            baseline_image,
        }
    }

    pub(crate) async fn release(&self, tag: &str, seed: &str, behavior: Value) -> String {
        let digest = self
            .registry
            .push_image(&self.spec.repo, tag, &["--seed", seed]);
        let image = format!("{}/{}@{digest}", self.registry.ecr_host(), self.spec.repo);
        let mut body = json!({"image": image, "version": tag.trim_start_matches('v')});
        if let (Some(b), Some(extra)) = (body.as_object_mut(), behavior.as_object()) {
            b.extend(extra.clone());
        }
        self.sim.control("/_sim/images", body).await;
        image
    }

    fn deploy(&self, tag: &str) -> (std::process::Output, Value) {
        self.deploy_with(tag, 3)
    }

    /// With the SDK's own retries at `attempts`: 1 shows ferry every throttle itself.
    fn deploy_with(&self, tag: &str, attempts: u32) -> (std::process::Output, Value) {
        self.deploy_env(tag, attempts, &[])
    }

    /// With more environment variables for ferry.
    pub(crate) fn deploy_env(
        &self,
        tag: &str,
        attempts: u32,
        extra: &[(&str, String)],
    ) -> (std::process::Output, Value) {
        let mut env = vec![
            ("FERRY_REGISTRY_ENDPOINTS", self.registry.endpoint_entry()),
            ("AWS_ENDPOINT_URL_ECS", self.sim.endpoint.clone()),
            ("AWS_MAX_ATTEMPTS", attempts.to_string()),
        ];
        env.extend(extra.iter().cloned());
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
            &env,
        );
        let report = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
        (o, report)
    }

    /// What ECS says the service runs, once it is idle again.
    async fn settled_td(&self) -> String {
        self.sim
            .wait_idle(&self.cluster, &self.spec.service)
            .await
            .task_definition()
            .unwrap()
            .to_string()
    }

    async fn lag(&self, seconds: f64) {
        self.sim
            .control("/_sim/lag", json!({"seconds": seconds}))
            .await;
    }

    async fn deny_service_deployments(&self) {
        self.sim
            .control(
                "/_sim/deny",
                json!({"operations": ["ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions"]}),
            )
            .await;
    }
}

/// A service with the circuit breaker (rollback on), desired 2; optionally behind a load
/// balancer and watched by a deployment alarm.
async fn create_service(
    sim: &EcsSim,
    cluster: &str,
    service: &str,
    image: &str,
    shape: Shape,
) -> String {
    use aws_sdk_ecs::types::*;
    let ecs = sim.client();
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    let mut container = ContainerDefinition::builder()
        .name("web")
        .image(image)
        .essential(true);
    if shape.load_balancer {
        container = container.port_mappings(PortMapping::builder().container_port(8080).build());
    }
    let td = ecs
        .register_task_definition()
        .family(format!("{cluster}-{service}"))
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(container.build())
        .send()
        .await
        .unwrap();
    let arn = td
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    let mut dc = DeploymentConfiguration::builder()
        .maximum_percent(200)
        .minimum_healthy_percent(100)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        );
    if shape.alarm {
        dc = dc.alarms(
            DeploymentAlarms::builder()
                .alarm_names("web-5xx")
                .enable(true)
                .rollback(true)
                .build()
                .unwrap(),
        );
    }
    let mut create = ecs
        .create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(&arn)
        .desired_count(2)
        .launch_type(LaunchType::Fargate)
        .deployment_configuration(dc.build())
        .network_configuration(test_network());
    if shape.load_balancer {
        create = create
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(format!(
                        "arn:aws:elasticloadbalancing:{}:123456789012:targetgroup/{service}/0123456789abcdef",
                        region()
                    ))
                    .container_name("web")
                    .container_port(8080)
                    .build(),
            )
            .health_check_grace_period_seconds(1);
    }
    create.send().await.unwrap();
    sim.wait_idle(cluster, service).await;
    arn
}

fn final_td(report: &Value) -> &str {
    report["services"][0]["final_task_definition"]
        .as_str()
        .unwrap_or_else(|| panic!("no final_task_definition in {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_release_under_read_lag_is_deployed() {
    let lab = Lab::new(Shape::default(), None).await;
    lab.release("v1.0.0-rc.1", "901", json!({"behavior": "healthy"}))
        .await;
    lab.lag(5.0).await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 0);
    assert_eq!(report["outcome"], "deployed", "{}", stderr(&o));
    let new = report["services"][0]["task_definition"].as_str().unwrap();
    assert_eq!(final_td(&report), new);
    assert_eq!(lab.settled_td().await, new, "ECS runs what ferry reported");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_release_under_read_lag_without_the_service_deployments_api_is_deployed() {
    let lab = Lab::new(Shape::default(), None).await;
    lab.release("v1.0.0-rc.1", "902", json!({"behavior": "healthy"}))
        .await;
    lab.lag(5.0).await;
    lab.deny_service_deployments().await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("AccessDeniedException") && err.contains("ecs:ListServiceDeployments"),
        "the missing permission is named: {err}"
    );
    assert_eq!(
        err.matches("DescribeServices only").count(),
        1,
        "said once: {err}"
    );
    let new = report["services"][0]["task_definition"].as_str().unwrap();
    assert_eq!(final_td(&report), new);
    assert_eq!(lab.settled_td().await, new);
}

async fn crashing_release_under_read_lag(deny: bool) {
    let lab = Lab::new(Shape::default(), None).await;
    lab.release("v1.0.0-rc.1", "903", json!({"behavior": "crash"}))
        .await;
    lab.lag(5.0).await;
    if deny {
        lab.deny_service_deployments().await;
    }
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    assert_eq!(report["outcome"], "rolled-back", "{}", stderr(&o));
    assert_eq!(report["services"][0]["state"], "failed");
    assert_eq!(final_td(&report), lab.baseline_td);
    assert_eq!(
        lab.settled_td().await,
        lab.baseline_td,
        "ECS runs the baseline again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_release_under_read_lag_is_rolled_back() {
    crashing_release_under_read_lag(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_release_under_read_lag_without_the_service_deployments_api_is_rolled_back() {
    crashing_release_under_read_lag(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_service_deployments_api_is_retried_not_dropped() {
    let lab = Lab::new(Shape::default(), None).await;
    lab.release("v1.0.0-rc.1", "904", json!({"behavior": "healthy"}))
        .await;
    for op in ["ListServiceDeployments", "DescribeServiceDeployments"] {
        lab.sim
            .control(
                "/_sim/throttle",
                // One call, then one per 10 s: a rollout of seconds meets the throttle
                // whatever its poll timing.
                json!({"operation": op, "per_second": 0.1, "burst": 1}),
            )
            .await;
    }
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("ThrottlingException"),
        "the throttle was met: {err}"
    );
    assert!(
        !err.contains("DescribeServices only"),
        "a throttle never switches the API off: {err}"
    );
    assert_eq!(report["outcome"], "deployed");
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_that_crash_after_running_time_out_and_are_explained() {
    // No health check: the circuit breaker never trips (ECS counts only tasks that never
    // reach RUNNING), so only ferry's timeout ends it.
    let lab = Lab::new(Shape::default(), Some(12)).await;
    lab.release(
        "v1.0.0-rc.1",
        "905",
        json!({"behavior": "crash-after-running", "exit_after_seconds": 0.1}),
    )
    .await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("did not finish within 12s") && verdict.contains("still pending"),
        "{verdict}"
    );
    let evidence = report["services"][0]["evidence"].to_string();
    assert!(
        evidence.contains("exit"),
        "the container exit is evidence: {evidence}"
    );
    assert_eq!(final_td(&report), lab.baseline_td);
    assert_eq!(lab.settled_td().await, lab.baseline_td);
}

#[tokio::test(flavor = "multi_thread")]
async fn load_balancer_health_failures_are_named() {
    let lab = Lab::new(
        Shape {
            load_balancer: true,
            ..Shape::default()
        },
        None,
    )
    .await;
    lab.release("v1.0.0-rc.1", "906", json!({"behavior": "elb-unhealthy"}))
        .await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    let text = format!(
        "{} {}",
        report["verdict"], report["services"][0]["evidence"]
    );
    assert!(
        text.contains("target-group") && (text.contains("ELB") || text.contains("unhealthy in")),
        "the load balancer is named: {text}"
    );
    assert_eq!(lab.settled_td().await, lab.baseline_td);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_during_bake_time_rolls_back_naming_the_alarm() {
    let lab = Lab::new(
        Shape {
            alarm: true,
            ..Shape::default()
        },
        None,
    )
    .await;
    lab.sim
        .control("/_sim/timing", json!({"alarm_bake_seconds": 8.0}))
        .await;
    lab.release("v1.0.0-rc.1", "907", json!({"behavior": "healthy"}))
        .await;
    let endpoint = lab.sim.endpoint.clone();
    let fire = tokio::spawn(async move {
        // The rollout takes about 2 s; the alarm fires during the 8 s bake that follows.
        tokio::time::sleep(Duration::from_secs(4)).await;
        reqwest::Client::new()
            .post(format!("{endpoint}/_sim/alarms"))
            .json(&json!({"name": "web-5xx", "state": "ALARM"}))
            .send()
            .await
            .unwrap();
    });
    let (o, report) = tokio::task::spawn_blocking({
        let args = (
            lab.dir.path().to_path_buf(),
            lab.registry.endpoint_entry(),
            lab.sim.endpoint.clone(),
        );
        move || {
            let o = ferry(
                &[
                    "deploy",
                    "--environments",
                    args.0.to_str().unwrap(),
                    "--tag",
                    "v1.0.0-rc.1",
                    "--output",
                    "json",
                ],
                &[
                    ("FERRY_REGISTRY_ENDPOINTS", args.1),
                    ("AWS_ENDPOINT_URL_ECS", args.2),
                    ("AWS_MAX_ATTEMPTS", "3".into()),
                ],
            );
            let report: Value = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
            (o, report)
        }
    })
    .await
    .unwrap();
    fire.await.unwrap();
    assert_exit(&o, 4);
    let verdict = report["verdict"].as_str().unwrap();
    assert!(verdict.contains("web-5xx"), "the alarm is named: {verdict}");
    assert_eq!(final_td(&report), lab.baseline_td);
    assert_eq!(lab.settled_td().await, lab.baseline_td);
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_that_cannot_be_placed_time_out_naming_placement() {
    let lab = Lab::new(Shape::default(), Some(10)).await;
    lab.release("v1.0.0-rc.1", "908", json!({"behavior": "unplaceable"}))
        .await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("did not finish within 10s") && verdict.contains("unable to place"),
        "{verdict}"
    );
    assert_eq!(lab.settled_td().await, lab.baseline_td);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_requested_while_ecs_rolls_back_is_accepted_and_followed() {
    // The release crashes; ECS's rollback to the baseline is slow (its tasks take 12 s to
    // start), so ferry's 6 s timeout ends while ECS is still rolling back. ferry's own
    // StopServiceDeployment(ROLLBACK) is then accepted and the rollback carries on.
    let lab = Lab::new(Shape::default(), Some(6)).await;
    lab.release("v1.0.0-rc.1", "909", json!({"behavior": "crash"}))
        .await;
    lab.sim
        .control(
            "/_sim/images",
            json!({"image": lab.baseline_image, "version": "0.9.0-rc.1", "behavior": "healthy", "start_seconds": 12.0}),
        )
        .await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    assert!(
        stderr(&o).contains("stopping deployment"),
        "ferry asked ECS to stop it: {}",
        stderr(&o)
    );
    assert_eq!(report["services"][0]["state"], "failed", "{report}");
    assert_eq!(final_td(&report), lab.baseline_td);
    assert_eq!(lab.settled_td().await, lab.baseline_td);
}

/// A load balancer still mixing old and new tasks: the first `mixed` answers alternate between
/// the old and the new version, then only the new one answers (`mixed` = `usize::MAX`: never).
fn mixed_endpoint(mixed: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let version = if i < mixed && i % 2 == 0 {
                "0.9.0-rc.1"
            } else {
                "1.0.0-rc.1"
            };
            let body = format!("{{\"version\":\"{version}\"}}");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/health")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smoke_gate_waits_out_a_mix_of_old_and_new_answers() {
    let lab = Lab::with_smoke(Shape::default(), None, Some(mixed_endpoint(8))).await;
    lab.release("v1.0.0-rc.1", "910", json!({"behavior": "healthy"}))
        .await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 0);
    let smoke = &report["smoke"][0];
    assert!(
        smoke["attempts"].as_u64().unwrap() >= 10,
        "lucky answers in the mix did not count: {smoke}"
    );
    assert!(
        smoke["detail"]
            .as_str()
            .unwrap()
            .contains("3 answers in a row"),
        "{smoke}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mix_that_never_settles_fails_the_smoke_gate_and_rolls_back() {
    let lab = Lab::with_smoke(Shape::default(), None, Some(mixed_endpoint(usize::MAX))).await;
    lab.release("v1.0.0-rc.1", "911", json!({"behavior": "healthy"}))
        .await;
    let (o, report) = lab.deploy("v1.0.0-rc.1");
    assert_exit(&o, 4);
    let smoke = &report["smoke"][0];
    assert_eq!(smoke["ok"], false, "{smoke}");
    let detail = smoke["detail"].as_str().unwrap();
    assert!(
        detail.contains("in a row") || detail.contains("0.9.0-rc.1"),
        "the mix is what failed: {smoke}"
    );
    assert_eq!(final_td(&report), lab.baseline_td);
}
