//! The preflight through the CLI (issue 19): a service no rollout can move (minimum healthy
//! 100 %, maximum 100 %) with its circuit breaker off is named by `validate --online`, and
//! `plan` and `deploy` refuse it before anything changes; once its settings are what a safe
//! rolling deploy needs, it has no finding and the release deploys.

use aws_sdk_ecs::types::{
    DeploymentCircuitBreaker, DeploymentConfiguration, LogConfiguration, LogDriver,
};
use serde_json::Value;

use crate::common::*;

/// A staging service running v0.9.0-rc.1 (seeded with `seed`), and v1.0.0-rc.1 pushed:
/// (spec, simulator, cluster, environments dir, registry, the service's task definition).
async fn staging(seed: u32) -> (EnvSpec, EcsSim, String, tempfile::TempDir, Registry, String) {
    let mut spec = EnvSpec::new();
    let sim = EcsSim::start();
    let cluster = format!("{}-staging", spec.cluster);
    spec.staging_smoke = Some(sim.health_url(&cluster, &spec.service));
    let dir = spec.write();
    create_repository(&spec.staging_account, &spec.repo).await;
    let registry = Registry::for_account(&spec.staging_account);
    let base = registry.push_image(&spec.repo, "v0.9.0-rc.1", &["--seed", &seed.to_string()]);
    let image = |d: &str| format!("{}/{}@{d}", registry.ecr_host(), spec.repo);
    sim.image(&image(&base), "0.9.0-rc.1", "healthy").await;
    let base_td = sim
        .service(&cluster, &spec.service, &spec.container, &image(&base))
        .await;
    let rc_seed = (seed + 10).to_string();
    let rc = registry.push_image(&spec.repo, "v1.0.0-rc.1", &["--seed", &rc_seed]);
    sim.image(&image(&rc), "1.0.0-rc.1", "healthy").await;
    (spec, sim, cluster, dir, registry, base_td)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_no_rollout_can_move_is_named_and_refused_before_anything_changes() {
    let (spec, sim, cluster, dir, registry, base_td) = staging(90).await;
    let ecs = sim.client();
    let stuck = DeploymentConfiguration::builder()
        .minimum_healthy_percent(100)
        .maximum_percent(100)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(false)
                .rollback(false)
                .build(),
        )
        .build();
    ecs.update_service()
        .cluster(&cluster)
        .service(&spec.service)
        .deployment_configuration(stuck)
        .send()
        .await
        .unwrap();
    let env = vec![
        ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
        ("FERRY_REGISTRY_ENDPOINTS", registry.endpoint_entry()),
    ];
    let envs = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--environments", envs]);
        ferry(&a, &env)
    };
    let checks = |o: &std::process::Output| -> Vec<Value> {
        let v: Value = serde_json::from_str(&stdout(o)).unwrap();
        v["checks"]
            .as_array()
            .or_else(|| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let preflight_of = |o: &std::process::Output| -> Value {
        checks(o)
            .into_iter()
            .find(|c| {
                c["environment"] == "staging"
                    && c["check"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("preflight ")
            })
            .unwrap_or_else(|| panic!("no staging preflight check: {}", stdout(o)))
    };

    // validate --online names the service and each setting, and fails.
    let o = run(&["validate", "--online", "--output", "json"]);
    assert_exit(&o, 2);
    let p = preflight_of(&o);
    assert_eq!(p["ok"], false, "{p}");
    let detail = p["detail"].as_str().unwrap();
    for needle in [
        "minimumHealthyPercent 100 and maximumPercent 100 with 2 desired task(s)",
        "deploymentCircuitBreaker: the circuit breaker is off",
        "logConfiguration",
    ] {
        assert!(detail.contains(needle), "{needle:?} not in {detail}");
    }

    // plan and deploy refuse alike, and nothing changes.
    for cmd in ["plan", "deploy"] {
        let o = run(&[cmd, "--tag", "v1.0.0-rc.1"]);
        assert_exit(&o, 3);
        assert!(
            stderr(&o).contains("no rollout can succeed; nothing was changed")
                && stderr(&o).contains(&format!("{cluster}/{}", spec.service)),
            "{cmd}: {}",
            stderr(&o)
        );
    }
    let svc = sim.describe(&cluster, &spec.service).await;
    assert_eq!(
        svc.task_definition(),
        Some(base_td.as_str()),
        "nothing was registered or deployed"
    );

    // Fixed as the checklist says (and logs added): no finding, and the release deploys.
    let out = ecs
        .describe_task_definition()
        .task_definition(&base_td)
        .send()
        .await
        .unwrap();
    let td = out.task_definition().unwrap();
    let mut c = td.container_definitions()[0].clone();
    c.log_configuration = Some(
        LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .build()
            .unwrap(),
    );
    let with_logs = ecs
        .register_task_definition()
        .family(td.family().unwrap())
        .set_network_mode(td.network_mode().cloned())
        .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
        .set_cpu(td.cpu().map(str::to_string))
        .set_memory(td.memory().map(str::to_string))
        .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
        .container_definitions(c)
        .send()
        .await
        .unwrap();
    ecs.update_service()
        .cluster(&cluster)
        .service(&spec.service)
        .task_definition(
            with_logs
                .task_definition()
                .unwrap()
                .task_definition_arn()
                .unwrap(),
        )
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(100)
                .maximum_percent(200)
                .deployment_circuit_breaker(
                    DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(true)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    sim.wait_idle(&cluster, &spec.service).await;
    let o = run(&["validate", "--online", "--output", "json"]);
    let p = preflight_of(&o);
    assert_eq!(p["ok"], true, "{p}");
    assert!(
        p["detail"].as_str().unwrap().starts_with("no finding"),
        "{p}"
    );
    let o = run(&["deploy", "--tag", "v1.0.0-rc.1"]);
    assert_exit(&o, 0);
}

/// A repository whose every tag is immutable cannot hold ferry's claim (renewed by re-writing
/// its tag) nor its records' index: `plan` and `deploy` refuse before anything changes, naming
/// the setting and the exclusion that fixes it (moto's ECR holds the setting). With
/// `IMMUTABLE_WITH_EXCLUSION` excluding ferry's tags, the release deploys.
#[tokio::test(flavor = "multi_thread")]
async fn a_repository_of_immutable_tags_is_refused_until_ferrys_tags_are_excluded() {
    use aws_sdk_ecr::types::{
        ImageTagMutability, ImageTagMutabilityExclusionFilter as Filter,
        ImageTagMutabilityExclusionFilterType as FilterType,
    };
    let (spec, sim, cluster, dir, registry, base_td) = staging(91).await;
    let ecr = aws_sdk_ecr::Client::new(&setup_config(&spec.staging_account).await);
    ecr.put_image_tag_mutability()
        .repository_name(&spec.repo)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let env = vec![
        ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
        ("FERRY_REGISTRY_ENDPOINTS", registry.endpoint_entry()),
    ];
    let envs = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--environments", envs]);
        ferry(&a, &env)
    };
    for cmd in ["plan", "deploy"] {
        let o = run(&[cmd, "--tag", "v1.0.0-rc.1"]);
        assert_exit(&o, 3);
        let err = stderr(&o);
        assert!(
            err.contains("no rollout can succeed; nothing was changed")
                && err.contains(&format!(
                    "error imageTagMutability: {}/{} does not let ferry re-write its own tags (ferry-claim_*, sha256-*)",
                    registry.ecr_host(),
                    spec.repo
                ))
                && err.contains("IMMUTABLE_WITH_EXCLUSION, excluding ferry-claim_*"),
            "{cmd}: {err}"
        );
    }
    assert_eq!(
        sim.describe(&cluster, &spec.service)
            .await
            .task_definition(),
        Some(base_td.as_str()),
        "nothing was registered or deployed"
    );
    assert_eq!(registry.claim_tags(&spec.repo).await, Vec::<String>::new());

    // Ferry's tags excluded (the README's advice): the release deploys.
    let filter = |f: &str| {
        Filter::builder()
            .filter_type(FilterType::Wildcard)
            .filter(f)
            .build()
            .unwrap()
    };
    ecr.put_image_tag_mutability()
        .repository_name(&spec.repo)
        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
        .image_tag_mutability_exclusion_filters(filter("ferry-claim_*"))
        .image_tag_mutability_exclusion_filters(filter("ferry-unclaim_*"))
        .image_tag_mutability_exclusion_filters(filter("sha256-*"))
        .send()
        .await
        .unwrap();
    let o = run(&["deploy", "--tag", "v1.0.0-rc.1"]);
    assert_exit(&o, 0);
    assert!(!stderr(&o).contains("imageTagMutability"), "{}", stderr(&o));
}
