//! Blue/green releases through CodeDeploy, end to end: the simulator runs the CodeDeploy
//! deployment over the same ECS service (tests/ecs_sim, `AWS_ENDPOINT_URL_CODEDEPLOY`), and
//! its test and production listeners answer with the version really behind each, so the
//! test-traffic smoke check sees what a user would.

use crate::common::*;
use serde_json::{json, Value};

const TG_BLUE: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/0123456789abcdef";
const LISTENER: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/0123456789abcdef/";

/// A staging environment with a CodeDeploy-controlled service `web` (and, for a mixed
/// environment, a rolling service `api`), running a healthy baseline.
struct World {
    dir: tempfile::TempDir,
    registry: Registry,
    sim: EcsSim,
    repo: String,
    cluster: String,
    baseline_td: String,
}

struct Options {
    config: &'static str,
    mixed: bool,
    /// CodeDeploy minutes the original task set is kept after the shift.
    termination_minutes: i32,
    /// An ECS-native strategy (`BLUE_GREEN`, …) instead of CodeDeploy (`config: "pause"`: with a
    /// PAUSE hook after the test-traffic shift).
    native: Option<&'static str>,
}

impl World {
    async fn new(opts: Options) -> World {
        let account = random_account();
        let repo = unique("app");
        let cluster = unique("cluster");
        let sim = EcsSim::start();
        // One CodeDeploy minute (ready wait, canary and linear steps) lasts 0.4 s.
        sim.control("/_sim/timing", json!({"codedeploy_minute_seconds": 0.4}))
            .await;
        let registry = Registry::for_account(&account);
        let base = registry.push_image(&repo, "v0.9.0-rc.1", &["--seed", "90"]);
        let base_image = format!("{}/{}@{base}", registry.ecr_host(), repo);
        sim.image(&base_image, "0.9.0-rc.1", "healthy").await;
        let ecs = sim.client();
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .unwrap();
        let baseline_td = match opts.native {
            Some(strategy) if opts.config == "pause" => {
                native_service_with(
                    &sim,
                    &cluster,
                    &base_image,
                    strategy,
                    Some("POST_TEST_TRAFFIC_SHIFT"),
                )
                .await
            }
            Some(strategy) => native_service(&sim, &cluster, &base_image, strategy).await,
            None => {
                let td = blue_green_service(&sim, &cluster, &base_image).await;
                seed_codedeploy(&sim, &cluster, opts.config, opts.termination_minutes).await;
                td
            }
        };
        if opts.mixed {
            sim.service_in_existing_cluster(&cluster, "api", "api", &base_image)
                .await;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut services = format!(
            "[[services]]\ncluster = \"{cluster}\"\nservice = \"web\"\ncontainer = \"web\"\n"
        );
        if opts.mixed {
            services.push_str(&format!(
                "[[services]]\ncluster = \"{cluster}\"\nservice = \"api\"\ncontainer = \"api\"\n"
            ));
        }
        let prod = format!("{}/app/{cluster}/web/health", sim.endpoint);
        let test = format!("{}/app/{cluster}/web/test/health", sim.endpoint);
        std::fs::write(
            dir.path().join("staging.toml"),
            format!(
                "account_id = \"{account}\"\nregion = \"{region}\"\n[role]\narn = \"arn:aws:iam::{account}:role/ferry-deploy\"\n[release]\nmatch = \"prerelease\"\n[image]\nrepository = \"{repo}\"\n{services}[[smoke]]\nurl = \"{prod}\"\ntest_url = \"{test}\"\nservice = \"web\"\nversion_field = \"version\"\ndeadline_seconds = 6\ntimeout_seconds = 2\n",
                region = region()
            ),
        )
        .unwrap();
        World {
            dir,
            registry,
            sim,
            repo,
            cluster,
            baseline_td,
        }
    }

    async fn release(&self, tag: &str, seed: &str, behavior: &str) -> String {
        let digest = self.registry.push_image(&self.repo, tag, &["--seed", seed]);
        let image = format!("{}/{}@{digest}", self.registry.ecr_host(), self.repo);
        self.sim
            .image(&image, tag.trim_start_matches('v'), behavior)
            .await;
        image
    }

    fn deploy(&self, tag: &str) -> std::process::Output {
        self.ferry(&["deploy", "--tag", tag, "--output", "json"])
    }

    /// `ferry <args> --environments <dir>` against this world.
    fn ferry(&self, args: &[&str]) -> std::process::Output {
        self.ferry_command(args).output().expect("running ferry")
    }

    fn ferry_command(&self, args: &[&str]) -> std::process::Command {
        let mut args = args.to_vec();
        args.extend(["--environments", self.dir.path().to_str().unwrap()]);
        ferry_command(
            &args,
            &[
                ("FERRY_REGISTRY_ENDPOINTS", self.registry.endpoint_entry()),
                ("AWS_ENDPOINT_URL_ECS", self.sim.endpoint.clone()),
                ("AWS_ENDPOINT_URL_CODEDEPLOY", self.sim.endpoint.clone()),
                ("AWS_MAX_ATTEMPTS", "3".into()),
            ],
        )
    }

    async fn state(&self) -> Value {
        self.sim.get("/_sim/state").await
    }

    async fn web(&self) -> aws_sdk_ecs::types::Service {
        self.sim.describe(&self.cluster, "web").await
    }

    /// The version the production listener answers with.
    async fn production_version(&self) -> String {
        let v: Value = reqwest::get(format!(
            "{}/app/{}/web/health",
            self.sim.endpoint, self.cluster
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        v["version"].as_str().unwrap_or_default().to_string()
    }

    /// Each CodeDeploy deployment's status and the most production traffic it gave its
    /// replacement, oldest first.
    async fn deployments(&self) -> Vec<(String, String, f64)> {
        let s = self.state().await;
        let mut out: Vec<(f64, String, String, f64)> = s["codedeployDeployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let id = d["deploymentId"].as_str().unwrap().to_string();
                (
                    d["createTime"].as_f64().unwrap(),
                    id.clone(),
                    d["status"].as_str().unwrap().to_string(),
                    s["codedeployMaxWeight"][&id].as_f64().unwrap(),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.into_iter().map(|(_, i, st, w)| (i, st, w)).collect()
    }
}

/// `web` with the CODE_DEPLOY controller behind the blue target group; waits until it serves.
async fn blue_green_service(sim: &EcsSim, cluster: &str, image: &str) -> String {
    use aws_sdk_ecs::types::*;
    let ecs = sim.client();
    let td = ecs
        .register_task_definition()
        .family(format!("{cluster}-web"))
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(image)
                .essential(true)
                .port_mappings(PortMapping::builder().container_port(8080).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = td
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    ecs.create_service()
        .cluster(cluster)
        .service_name("web")
        .task_definition(&arn)
        .desired_count(2)
        .launch_type(LaunchType::Fargate)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::CodeDeploy)
                .build()
                .unwrap(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(TG_BLUE)
                .container_name("web")
                .container_port(8080)
                .build(),
        )
        .network_configuration(test_network())
        .send()
        .await
        .unwrap();
    let url = sim.health_url(cluster, "web");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while reqwest::get(&url).await.unwrap().status() != 200 {
        assert!(std::time::Instant::now() < deadline, "web never served");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    arn
}

/// `web` with the ECS controller and an ECS-native strategy: a load balancer with an alternate
/// target group and test listener rule; each lifecycle stage lasts 2 s, bake time 1 minute = 8 s.
async fn native_service(sim: &EcsSim, cluster: &str, image: &str, strategy: &str) -> String {
    native_service_with(sim, cluster, image, strategy, None).await
}

/// [`native_service`], optionally with a PAUSE lifecycle hook at `pause_at`.
async fn native_service_with(
    sim: &EcsSim,
    cluster: &str,
    image: &str,
    strategy: &str,
    pause_at: Option<&str>,
) -> String {
    use aws_sdk_ecs::types::*;
    sim.control(
        "/_sim/timing",
        json!({"stage_seconds": 2.0, "ecs_minute_seconds": 8.0}),
    )
    .await;
    let ecs = sim.client();
    let td = ecs
        .register_task_definition()
        .family(format!("{cluster}-web"))
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(image)
                .essential(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = td
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    ecs.create_service()
        .cluster(cluster)
        .service_name("web")
        .task_definition(&arn)
        .desired_count(2)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::from(strategy))
                .bake_time_in_minutes(1)
                .set_canary_configuration((strategy == "CANARY").then(|| {
                    CanaryConfiguration::builder()
                        .canary_percent(20.0)
                        .canary_bake_time_in_minutes(1)
                        .build()
                }))
                .set_lifecycle_hooks(pause_at.map(|stage| {
                    vec![DeploymentLifecycleHook::builder()
                        .target_type(DeploymentLifecycleHookTargetType::Pause)
                        .lifecycle_stages(DeploymentLifecycleHookStage::from(stage))
                        .build()]
                }))
                .deployment_circuit_breaker(
                    DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(true)
                        .build(),
                )
                .build(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(TG_BLUE)
                .container_name("web")
                .container_port(8080)
                .advanced_configuration(
                    AdvancedConfiguration::builder()
                        .alternate_target_group_arn(TG_BLUE.replace("web-blue", "web-green"))
                        .production_listener_rule(format!("{LISTENER}prod-rule"))
                        .test_listener_rule(format!("{LISTENER}test-rule"))
                        .role_arn("arn:aws:iam::123456789012:role/ecs-lb")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    sim.wait_idle(cluster, "web").await;
    arn
}

/// Application `shop`, deployment group `web` (holds the replacement on test traffic until
/// ContinueDeployment, rolls back on failure, stop and its alarm `web-5xx`).
async fn seed_codedeploy(sim: &EcsSim, cluster: &str, config: &str, termination_minutes: i32) {
    use aws_sdk_codedeploy::types::*;
    let conf = aws_sdk_codedeploy::Config::builder()
        .behavior_version(aws_sdk_codedeploy::config::BehaviorVersion::latest())
        .region(aws_sdk_codedeploy::config::Region::new(region()))
        .endpoint_url(&sim.endpoint)
        .credentials_provider(aws_sdk_codedeploy::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    let cd = aws_sdk_codedeploy::Client::from_conf(conf);
    cd.create_application()
        .application_name("shop")
        .compute_platform(ComputePlatform::Ecs)
        .send()
        .await
        .unwrap();
    cd.create_deployment_group()
        .application_name("shop")
        .deployment_group_name("web")
        .service_role_arn("arn:aws:iam::123456789012:role/codedeploy")
        .deployment_config_name(config)
        .ecs_services(
            EcsService::builder()
                .cluster_name(cluster)
                .service_name("web")
                .build(),
        )
        .deployment_style(
            DeploymentStyle::builder()
                .deployment_type(DeploymentType::BlueGreen)
                .deployment_option(DeploymentOption::WithTrafficControl)
                .build(),
        )
        .blue_green_deployment_configuration(
            BlueGreenDeploymentConfiguration::builder()
                .deployment_ready_option(
                    DeploymentReadyOption::builder()
                        .action_on_timeout(DeploymentReadyAction::StopDeployment)
                        .wait_time_in_minutes(60)
                        .build(),
                )
                .terminate_blue_instances_on_deployment_success(
                    BlueInstanceTerminationOption::builder()
                        .action(InstanceAction::Terminate)
                        .termination_wait_time_in_minutes(termination_minutes)
                        .build(),
                )
                .build(),
        )
        .load_balancer_info(
            LoadBalancerInfo::builder()
                .target_group_pair_info_list(
                    TargetGroupPairInfo::builder()
                        .target_groups(TargetGroupInfo::builder().name("web-blue").build())
                        .target_groups(TargetGroupInfo::builder().name("web-green").build())
                        .prod_traffic_route(
                            TrafficRoute::builder()
                                .listener_arns(format!("{LISTENER}prod"))
                                .build(),
                        )
                        .test_traffic_route(
                            TrafficRoute::builder()
                                .listener_arns(format!("{LISTENER}test"))
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .alarm_configuration(
            AlarmConfiguration::builder()
                .enabled(true)
                .alarms(Alarm::builder().name("web-5xx").build())
                .build(),
        )
        .auto_rollback_configuration(
            AutoRollbackConfiguration::builder()
                .enabled(true)
                .events(AutoRollbackEvent::DeploymentFailure)
                .events(AutoRollbackEvent::DeploymentStopOnRequest)
                .events(AutoRollbackEvent::DeploymentStopOnAlarm)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn report(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

/// `ferry iam-policy` for the world's environment, checked against what ferry really called:
/// every ECS and CodeDeploy operation the simulator saw (it does not enforce IAM) is granted
/// by the generated role policy. Returns that policy.
async fn policy_grants_every_call(w: &World) -> Value {
    let o = w.ferry(&["iam-policy", "--output", "json"]);
    assert_exit(&o, 0);
    let all: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let policy = all["environments"][0]["role_policy"].clone();
    let granted = ferry::iam::actions(&policy);
    // The test's own setup calls, not ferry's.
    let setup = [
        "ecs:CreateCluster",
        "ecs:CreateService",
        "codedeploy:CreateApplication",
        "codedeploy:CreateDeploymentGroup",
    ];
    let calls = w.sim.get("/_sim/calls").await;
    for op in calls.as_object().unwrap().keys() {
        let action = if op.contains(':') {
            op.clone()
        } else {
            format!("ecs:{op}")
        };
        assert!(
            setup.contains(&action.as_str()) || granted.contains(&action),
            "ferry called {action}, which the generated policy does not grant: {granted:?}"
        );
    }
    policy
}

/// The statement `sid` of `policy`.
fn statement(policy: &Value, sid: &str) -> Value {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid}: {policy:#}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_all_at_once_checks_test_traffic_then_shifts() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSAllAtOnce",
        mixed: false,
        termination_minutes: 100,
        native: None,
    })
    .await;
    w.release("v1.0.0-rc.1", "100", "healthy").await;
    // The plan says which strategy runs and what it waits for.
    let p = w.ferry(&["plan", "--tag", "v1.0.0-rc.1"]);
    assert_exit(&p, 0);
    let plan = stdout(&p);
    assert!(
        plan.contains("strategy: CodeDeploy blue/green, shop/web (CodeDeployDefault.ECSAllAtOnce)"),
        "{plan}"
    );
    assert!(plan.contains("until 1 test_url check(s) pass"), "{plan}");
    let o = w.deploy("v1.0.0-rc.1");
    assert_exit(&o, 0);
    let r = report(&o);
    assert_eq!(r["outcome"], "deployed");
    let err = stderr(&o);
    assert!(err.contains("running 1 check(s) on test traffic"), "{err}");
    // Checked on the test listener first, then on production.
    let smoke = r["smoke"].as_array().unwrap();
    assert_eq!(smoke.len(), 2, "{smoke:?}");
    assert!(smoke[0]["name"]
        .as_str()
        .unwrap()
        .contains("(test listener)"));
    assert!(smoke[0]["url"].as_str().unwrap().ends_with("/test/health"));
    assert!(smoke.iter().all(|s| s["ok"] == true));
    let new_td = r["services"][0]["task_definition"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_td, w.baseline_td);
    assert_eq!(w.web().await.task_definition(), Some(new_td.as_str()));
    assert_eq!(w.production_version().await, "1.0.0-rc.1");
    let deps = w.deployments().await;
    assert_eq!(deps.len(), 1, "{deps:?}");
    // Reported at the shift, not waited out: the original task set is still there.
    assert_eq!(deps[0].1, "InProgress");
    assert_eq!(deps[0].2, 100.0);
    assert!(
        err.contains("keeps the original task set for 100 min"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_test_traffic_check_never_moves_production_traffic() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSAllAtOnce",
        mixed: false,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.release("v1.1.0-rc.1", "110", "smoke-error").await;
    let o = w.deploy("v1.1.0-rc.1");
    assert_exit(&o, 4);
    let r = report(&o);
    assert_eq!(r["outcome"], "rolled-back");
    let verdict = r["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("production traffic never moved"),
        "{verdict}"
    );
    assert!(verdict.contains("rolled it back"), "{verdict}");
    let deps = w.deployments().await;
    assert_eq!(deps.len(), 2, "ferry's and CodeDeploy's rollback: {deps:?}");
    assert_eq!((deps[0].1.as_str(), deps[0].2), ("Stopped", 0.0));
    assert_eq!(deps[1].1, "Succeeded");
    assert_eq!(
        w.web().await.task_definition(),
        Some(w.baseline_td.as_str())
    );
    assert_eq!(w.production_version().await, "0.9.0-rc.1");
    assert_eq!(r["services"][0]["state"], "failed");
    assert_eq!(
        r["services"][0]["final_task_definition"].as_str(),
        Some(w.baseline_td.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_canary_shifts_ten_percent_first() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSCanary10Percent5Minutes",
        mixed: false,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.release("v1.2.0-rc.1", "120", "healthy").await;
    let o = w.deploy("v1.2.0-rc.1");
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("production traffic: 10% on the replacement, 90% on the original"),
        "{err}"
    );
    assert!(
        err.contains("10% of production traffic, the rest 5 min later"),
        "{err}"
    );
    assert_eq!(w.production_version().await, "1.2.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_traffic_split_mid_release() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSCanary10Percent15Minutes",
        mixed: false,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.release("v1.2.1-rc.1", "121", "healthy").await;
    let child = w
        .ferry_command(&["deploy", "--tag", "v1.2.1-rc.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let deps = w.deployments().await;
        if deps.first().is_some_and(|d| d.2 == 10.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no canary step: {deps:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let o = w.ferry(&["status", "staging"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("strategy CODE_DEPLOY, release in flight: d-"),
        "{out}"
    );
    assert!(
        out.contains("production traffic 10% on the replacement, 90% on the original"),
        "{out}"
    );
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Kills the child if the test fails before waiting for it.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_during_the_canary_step_rolls_back() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSCanary10Percent15Minutes",
        mixed: false,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.release("v1.2.2-rc.1", "122", "healthy").await;
    let child = w
        .ferry_command(&["deploy", "--tag", "v1.2.2-rc.1", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !w.deployments().await.first().is_some_and(|d| d.2 == 10.0) {
        assert!(std::time::Instant::now() < deadline, "no canary step");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    w.sim
        .control("/_sim/alarms", json!({"name": "web-5xx", "state": "ALARM"}))
        .await;
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 4);
    let r = report(&o);
    let verdict = r["verdict"].as_str().unwrap();
    assert!(verdict.contains("ALARM_ACTIVE"), "{verdict}");
    assert!(verdict.contains("web-5xx"), "{verdict}");
    assert!(verdict.contains("CodeDeploy rolled it back"), "{verdict}");
    assert_eq!(
        w.web().await.task_definition(),
        Some(w.baseline_td.as_str())
    );
    assert_eq!(w.production_version().await, "0.9.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_production_check_switches_traffic_back() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSAllAtOnce",
        mixed: false,
        termination_minutes: 100,
        native: None,
    })
    .await;
    // A production check with no test_url that cannot pass: test traffic passes, production fails.
    let path = w.dir.path().join("staging.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[[smoke]]\nname = \"missing\"\nurl = \"{}/app/{}/nope/health\"\ndeadline_seconds = 2\ntimeout_seconds = 1\n",
        w.sim.endpoint, w.cluster
    ));
    std::fs::write(&path, text).unwrap();
    w.release("v1.8.0-rc.1", "180", "healthy").await;
    let o = w.deploy("v1.8.0-rc.1");
    assert_exit(&o, 4);
    let r = report(&o);
    assert_eq!(r["outcome"], "rolled-back");
    assert_eq!(r["services"][0]["state"], "rolled-back");
    let deps = w.deployments().await;
    assert_eq!(deps.len(), 2, "{deps:?}");
    // Production had moved; stopping in the termination wait switched it back.
    assert_eq!((deps[0].1.as_str(), deps[0].2), ("Stopped", 100.0));
    assert_eq!(deps[1].1, "Succeeded");
    assert_eq!(
        w.web().await.task_definition(),
        Some(w.baseline_td.as_str())
    );
    assert_eq!(w.production_version().await, "0.9.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_linear_shifts_in_steps() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
        mixed: false,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.release("v1.3.0-rc.1", "130", "healthy").await;
    let o = w.deploy("v1.3.0-rc.1");
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("10% more production traffic every 1 min"),
        "{err}"
    );
    let steps = err
        .lines()
        .filter(|l| l.contains("production traffic: ") && l.contains("% on the replacement"))
        .count();
    assert!(steps >= 2, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_replacement_fails_install_and_codedeploy_rolls_back() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSAllAtOnce",
        mixed: false,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.release("v1.4.0-rc.1", "140", "elb-unhealthy").await;
    let o = w.deploy("v1.4.0-rc.1");
    assert_exit(&o, 4);
    let r = report(&o);
    let verdict = r["verdict"].as_str().unwrap();
    assert!(verdict.contains("ECS_UPDATE_ERROR"), "{verdict}");
    assert!(
        verdict.contains("lifecycle event Install failed"),
        "{verdict}"
    );
    let evidence = r["services"][0]["evidence"].to_string();
    assert!(
        evidence.contains("unhealthy in (target-group"),
        "{evidence}"
    );
    assert_eq!(
        w.web().await.task_definition(),
        Some(w.baseline_td.as_str())
    );
    assert_eq!(w.production_version().await, "0.9.0-rc.1");
    // No test-traffic check ran: the replacement never served the test listener.
    assert!(r["smoke"].as_array().unwrap().is_empty(), "{}", r["smoke"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_codedeploy_rollback_needs_attention() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSAllAtOnce",
        mixed: false,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.sim
        .control("/_sim/codedeploy", json!({"fail_rollback": true}))
        .await;
    w.release("v1.5.0-rc.1", "150", "smoke-error").await;
    let o = w.deploy("v1.5.0-rc.1");
    assert_exit(&o, 5);
    let r = report(&o);
    assert_eq!(r["outcome"], "needs-attention");
    let verdict = r["verdict"].as_str().unwrap();
    assert!(verdict.contains("rollback FAILED"), "{verdict}");
    assert_eq!(r["services"][0]["state"], "unknown");
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_environment_gives_one_verdict() {
    let w = World::new(Options {
        config: "CodeDeployDefault.ECSAllAtOnce",
        mixed: true,
        termination_minutes: 1,
        native: None,
    })
    .await;
    w.release("v1.6.0-rc.1", "160", "healthy").await;
    let o = w.deploy("v1.6.0-rc.1");
    assert_exit(&o, 0);
    let r = report(&o);
    assert_eq!(r["outcome"], "deployed");
    let services = r["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    assert!(
        services.iter().all(|s| s["state"] == "deployed"),
        "{services:?}"
    );
    let api = w.sim.describe(&w.cluster, "api").await;
    assert_eq!(
        api.task_definition(),
        services[1]["task_definition"].as_str()
    );
    assert_eq!(w.production_version().await, "1.6.0-rc.1");

    // The blue/green half fails its test-traffic check: both come back, one verdict.
    w.release("v1.7.0-rc.1", "170", "smoke-error").await;
    let o = w.deploy("v1.7.0-rc.1");
    assert_exit(&o, 4);
    let r = report(&o);
    assert_eq!(r["outcome"], "rolled-back");
    let services = r["services"].as_array().unwrap();
    assert_eq!(services[0]["state"], "failed");
    assert_eq!(services[1]["state"], "rolled-back");
    let api = w.sim.describe(&w.cluster, "api").await;
    assert_eq!(
        api.task_definition(),
        services[1]["previous_task_definition"].as_str()
    );

    // Everything ferry called here is granted by `ferry iam-policy`, CodeDeploy on exactly
    // the service's deployment group.
    let policy = policy_grants_every_call(&w).await;
    let groups = statement(&policy, "CodeDeployDeployments")["Resource"].clone();
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert!(
        groups[0].as_str().unwrap().contains(":deploymentgroup:"),
        "{groups}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_native_blue_green_checks_test_traffic_and_bake_time() {
    let w = World::new(Options {
        config: "",
        mixed: false,
        termination_minutes: 0,
        native: Some("BLUE_GREEN"),
    })
    .await;
    w.release("v2.0.0-rc.1", "200", "healthy").await;
    let p = w.ferry(&["plan", "--tag", "v2.0.0-rc.1"]);
    assert_exit(&p, 0);
    assert!(
        stdout(&p).contains("strategy: ECS BLUE_GREEN, followed stage by stage"),
        "{}",
        stdout(&p)
    );
    let o = w.deploy("v2.0.0-rc.1");
    assert_exit(&o, 0);
    let err = stderr(&o);
    for stage in [
        "lifecycle stage SCALE_UP",
        "lifecycle stage TEST_TRAFFIC_SHIFT",
        "lifecycle stage BAKE_TIME",
        "running 1 check(s) on test traffic",
        "running 1 check(s) on production traffic during bake time",
    ] {
        assert!(err.contains(stage), "{stage}: {err}");
    }
    let r = report(&o);
    let names: Vec<&str> = r["smoke"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names[0].ends_with("(test listener)") && names[1].ends_with("(bake time)"),
        "{names:?}"
    );
    assert_eq!(w.production_version().await, "2.0.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_native_blue_green_failing_test_traffic_rolls_back() {
    let w = World::new(Options {
        config: "",
        mixed: false,
        termination_minutes: 0,
        native: Some("BLUE_GREEN"),
    })
    .await;
    w.release("v2.1.0-rc.1", "210", "smoke-error").await;
    let o = w.deploy("v2.1.0-rc.1");
    assert_exit(&o, 4);
    let r = report(&o);
    let verdict = r["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("the smoke check on test traffic failed at stage"),
        "{verdict}"
    );
    assert!(
        verdict.contains("ECS rolled the deployment back"),
        "{verdict}"
    );
    assert_eq!(r["services"][0]["state"], "failed");
    assert_eq!(
        w.web().await.task_definition(),
        Some(w.baseline_td.as_str())
    );
    assert_eq!(w.production_version().await, "0.9.0-rc.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_native_pause_hook_holds_production_until_the_test_checks_decide() {
    // Passing: ferry lifts the pause.
    let w = World::new(Options {
        config: "pause",
        mixed: false,
        termination_minutes: 0,
        native: Some("CANARY"),
    })
    .await;
    w.release("v2.2.0-rc.1", "220", "healthy").await;
    let p = w.ferry(&["plan", "--tag", "v2.2.0-rc.1"]);
    assert!(
        stdout(&p).contains("(a PAUSE hook holds production traffic until they pass)"),
        "{}",
        stdout(&p)
    );
    let o = w.deploy("v2.2.0-rc.1");
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("continuing past the PAUSE hook at POST_TEST_TRAFFIC_SHIFT"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.production_version().await, "2.2.0-rc.1");

    // Failing on test traffic: rolled back at the hook, production never moved.
    w.release("v2.3.0-rc.1", "230", "smoke-error").await;
    let o = w.deploy("v2.3.0-rc.1");
    assert_exit(&o, 4);
    let verdict = report(&o)["verdict"].as_str().unwrap().to_string();
    assert!(
        verdict.contains("production traffic never moved (held by the PAUSE hook)"),
        "{verdict}"
    );
    let state = w.state().await;
    let moved: Vec<f64> = state["nativeMaxWeight"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // The first release moved production (canary, then all); the failed one never did.
    assert_eq!(
        moved.iter().filter(|w| **w == 100.0).count(),
        1,
        "{moved:?}"
    );
    assert!(moved.iter().all(|w| *w == 100.0 || *w == 0.0), "{moved:?}");
    assert_eq!(w.production_version().await, "2.2.0-rc.1");

    // Continuing past the hook and rolling back are granted by `ferry iam-policy`, on
    // exactly this service's deployments; no CodeDeploy grant where none is used.
    let policy = policy_grants_every_call(&w).await;
    let continued = statement(&policy, "EcsContinuePausedDeployments")["Resource"].clone();
    assert_eq!(
        continued,
        serde_json::json!([format!(
            "arn:aws:ecs:{}:{}:service-deployment/{}/web/*",
            region(),
            w.registry.account,
            w.cluster
        )])
    );
    assert!(
        !ferry::iam::actions(&policy)
            .iter()
            .any(|a| a.starts_with("codedeploy:")),
        "{policy:#}"
    );
}
