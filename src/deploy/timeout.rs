//! How long a rollout may take, derived from the service itself (batches of replacement
//! tasks, health checks, load-balancer draining, bake time), so a large service is not
//! declared failed early and a small one is not waited on for an hour.

use std::time::Duration;

use aws_sdk_ecs::types::{Service, TaskDefinition};

/// How long a rollout may take, derived from the service: batches of replacement tasks, each
/// needing to start and pass health checks, plus load-balancer draining and bake time.
pub fn rollout_timeout(
    svc: &Service,
    td: &TaskDefinition,
    override_secs: Option<u64>,
) -> (Duration, String) {
    if let Some(s) = override_secs {
        return (
            Duration::from_secs(s),
            "set by deploy.rollout_timeout_seconds".into(),
        );
    }
    let desired = svc.desired_count().max(1) as u64;
    let dc = svc.deployment_configuration();
    let max_pct = dc.and_then(|d| d.maximum_percent()).unwrap_or(200).max(100) as u64;
    let min_pct = dc
        .and_then(|d| d.minimum_healthy_percent())
        .unwrap_or(100)
        .min(100) as u64;
    let surge = desired * (max_pct - 100) / 100;
    let drop = desired - (desired * min_pct).div_ceil(100);
    let per_batch = (surge + drop).max(1);
    let batches = desired.div_ceil(per_batch);
    let start = 120u64; // scheduling, image pull, container start
    let grace = svc.health_check_grace_period_seconds().unwrap_or(0).max(0) as u64;
    let health = td
        .container_definitions()
        .iter()
        .filter_map(|c| c.health_check())
        .map(|h| {
            let interval = h.interval().unwrap_or(30).max(0) as u64;
            let timeout = h.timeout().unwrap_or(5).max(0) as u64;
            let retries = h.retries().unwrap_or(3).max(0) as u64;
            h.start_period().unwrap_or(0).max(0) as u64 + (interval + timeout) * retries
        })
        .max()
        .unwrap_or(0);
    let lb = !svc.load_balancers().is_empty();
    let lb_health = if lb { 3 * 30 } else { 0 }; // target group: healthy threshold × interval (defaults)
    let drain = if lb { 300 } else { 0 }; // default deregistration delay
    let bake = dc
        .and_then(|d| d.bake_time_in_minutes())
        .unwrap_or(0)
        .max(0) as u64
        * 60;
    let per = start + grace.max(health).max(lb_health);
    let total = (batches * per + drain + bake).max(180);
    let why = format!(
        "{batches} batch(es) of up to {per_batch} task(s) × ({start}s start + {}s health) + {drain}s drain + {bake}s bake",
        grace.max(health).max(lb_health)
    );
    (Duration::from_secs(total), why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        ContainerDefinition, DeploymentConfiguration, HealthCheck, LoadBalancer,
    };

    fn service(desired: i32, max: i32, min: i32, grace: Option<i32>, lb: bool) -> Service {
        let mut b = Service::builder()
            .desired_count(desired)
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .maximum_percent(max)
                    .minimum_healthy_percent(min)
                    .build(),
            )
            .set_health_check_grace_period_seconds(grace);
        if lb {
            b = b.load_balancers(LoadBalancer::builder().container_name("web").build());
        }
        b.build()
    }

    fn td(health: bool) -> TaskDefinition {
        let mut c = ContainerDefinition::builder().name("web");
        if health {
            c = c.health_check(
                HealthCheck::builder()
                    .command("true")
                    .interval(10)
                    .timeout(5)
                    .retries(3)
                    .start_period(20)
                    .build()
                    .unwrap(),
            );
        }
        TaskDefinition::builder()
            .container_definitions(c.build())
            .build()
    }

    #[test]
    fn timeout_grows_with_batches_health_and_draining() {
        // 2 tasks, 200%: one batch of 2; no health check, no LB → the floor.
        let (t, why) = rollout_timeout(&service(2, 200, 100, None, false), &td(false), None);
        assert_eq!(t.as_secs(), 180);
        assert!(why.contains("1 batch(es) of up to 2"), "{why}");
        // 10 tasks, 120% / 100%: 2 at a time → 5 batches × (120 + 65) = 925.
        let (t, why) = rollout_timeout(&service(10, 120, 100, None, false), &td(true), None);
        assert_eq!(t.as_secs(), 5 * (120 + 20 + 15 * 3));
        assert!(why.contains("5 batch(es)"), "{why}");
        // Behind a load balancer: grace period and deregistration delay count.
        let (t, _) = rollout_timeout(&service(4, 200, 100, Some(300), true), &td(false), None);
        assert_eq!(t.as_secs(), 120 + 300 + 300);
        // The config override wins.
        let (t, why) =
            rollout_timeout(&service(4, 200, 100, Some(300), true), &td(false), Some(42));
        assert_eq!(t.as_secs(), 42);
        assert!(why.contains("rollout_timeout_seconds"));
    }
}
