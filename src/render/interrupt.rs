//! What an interrupted deploy leaves behind, in words: the service deployments and revisions
//! still under way in ECS, by name, the claim, and whether re-running is safe, which it is
//! not when the release had already failed (a re-run would deploy it again).

use crate::error::FailureKind;
use crate::inflight::{InFlight, Phase, Released, Service};

/// The interruption of a deploy, as the error to print: exit code, message, fix hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// Exit 1 when nothing in ECS was changed, else 5.
    pub kind: FailureKind,
    /// What was under way.
    pub message: String,
    /// What to do, and whether a re-run is safe.
    pub hint: String,
}

fn short(td: &str) -> &str {
    td.rsplit('/').next().unwrap_or(td)
}

fn deployment(s: &Service) -> String {
    match &s.deployment {
        Some(d) => format!("deployment {d} of {}", short(&s.revision)),
        None => short(&s.revision).to_string(),
    }
}

fn list(items: Vec<String>) -> String {
    items.join("; ")
}

/// Words for a deploy stopped by `signal`, with what was `in_flight` and which claims were
/// `released`.
pub fn interruption(signal: &str, in_flight: &InFlight, released: &Released) -> Interruption {
    let services = &in_flight.services;
    let failed: Vec<&Service> = services
        .iter()
        .filter(|s| {
            matches!(
                s.phase,
                Phase::RollingBack | Phase::RolledBack | Phase::RolledOut(false)
            )
        })
        .collect();
    let rolling: Vec<&Service> = services
        .iter()
        .filter(|s| matches!(s.phase, Phase::RollingOut | Phase::Updating))
        .collect();
    let done: Vec<&Service> = services
        .iter()
        .filter(|s| s.phase == Phase::RolledOut(true))
        .collect();
    let status = "`ferry status` shows what each service runs";
    let (kind, what, hint) = if !failed.is_empty() {
        let what = failed
            .iter()
            .map(|s| match s.phase {
                Phase::RollingBack => format!(
                    "{} was being rolled back from {} to {}: ECS carries on the rollback it was asked for, and ferry no longer watches it",
                    s.name,
                    deployment(s),
                    short(&s.previous)
                ),
                Phase::RolledBack => format!(
                    "{} was brought back from {} after the release failed",
                    s.name,
                    short(&s.revision)
                ),
                _ => format!(
                    "the rollout of {} on {} had failed and was not rolled back yet (ECS's circuit breaker may roll it back on its own)",
                    deployment(s),
                    s.name
                ),
            })
            .chain(rolling.iter().map(|s| {
                format!(
                    "{}: {} is still rolling out",
                    s.name,
                    deployment(s)
                )
            }))
            .collect();
        let previous = failed
            .iter()
            .map(|s| format!("{} runs {}", s.name, short(&s.previous)))
            .collect::<Vec<_>>()
            .join(" and ");
        (
            FailureKind::NeedsAttention,
            format!("the release failed, and {}", list(what)),
            format!(
                "it is NOT safe to just re-run this deploy: the release failed, and a re-run would deploy it again. Check that {previous} once ECS is done ({status}); if a service still runs the failed revision, re-run the release that ran before it (a rollback), and fix this release in a new one"
            ),
        )
    } else if !rolling.is_empty() {
        let what = rolling
            .iter()
            .map(|s| match s.phase {
                Phase::Updating => format!(
                    "{}: the update from {} to {} was sent and its answer had not come, so a deployment may be rolling out",
                    s.name,
                    short(&s.previous),
                    short(&s.revision)
                ),
                _ => format!(
                    "{}: {} (from {}) is still rolling out",
                    s.name,
                    deployment(s),
                    short(&s.previous)
                ),
            })
            .chain(
                done.iter()
                    .map(|s| format!("{}: the rollout of {} ended", s.name, short(&s.revision))),
            )
            .collect();
        (
            FailureKind::NeedsAttention,
            format!(
                "{}; ECS carries it on (its circuit breaker still rolls back failures), but ferry no longer watches it and no smoke check has run",
                list(what)
            ),
            format!(
                "a re-run is safe: run the deploy again after the deployment ends, or now with --wait-for-idle, and it picks up from there (a service that runs the release says \"already deployed\", and the smoke checks run); {status}"
            ),
        )
    } else if !done.is_empty() {
        let what = done
            .iter()
            .map(|s| format!("{} runs {}", s.name, short(&s.revision)))
            .collect::<Vec<_>>()
            .join(" and ");
        (
            FailureKind::NeedsAttention,
            format!("the rollout ended ({what}), but the smoke checks had not passed yet"),
            format!(
                "a re-run is safe: it finds the release deployed (\"already deployed\") and runs the smoke checks; {status}"
            ),
        )
    } else {
        let mut what = vec!["no service was changed".to_string()];
        what.extend(services.iter().map(|s| {
            format!(
                "{} is registered for {} but not in use (a re-run reuses it)",
                short(&s.revision),
                s.name
            )
        }));
        match in_flight.copying.as_slice() {
            [] => {}
            [to] => what.push(format!(
                "the promotion copy to {to} was under way; its tag is written last, so it does not name an incomplete image"
            )),
            all => what.push(format!(
                "the promotion copies to {} were under way; each tag is written last, so none names an incomplete image",
                all.join(", ")
            )),
        }
        (
            FailureKind::Error,
            list(what),
            "a re-run is safe: nothing in ECS was changed, and what was copied is proven and kept"
                .to_string(),
        )
    };
    let mut message = format!("stopped by {signal} while deploying: {what}");
    if !released.released.is_empty() {
        message.push_str(&format!(
            "; released its claim on the environment ({})",
            released.released.join(", ")
        ));
    }
    let mut hint = hint;
    for (tag, why) in &released.left {
        message.push_str(&format!("; could not release its claim {tag} ({why})"));
        hint.push_str(&format!(
            "; the claim {tag} lapses within {}s of its last renewal (or delete that tag)",
            (crate::lease::TTL + crate::lease::SKEW).as_secs()
        ));
    }
    Interruption {
        kind,
        message,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(phase: Phase) -> Service {
        Service {
            name: "c/web".into(),
            previous: "arn:aws:ecs:us-east-1:1:task-definition/web:4".into(),
            revision: "arn:aws:ecs:us-east-1:1:task-definition/web:5".into(),
            deployment: Some("ecs-svc/123".into()),
            phase,
        }
    }

    fn of(services: Vec<Service>, copying: Option<&str>) -> InFlight {
        InFlight {
            services,
            copying: copying.into_iter().map(str::to_string).collect(),
        }
    }

    /// Per state: the exit code, what is named, and whether a re-run is said to be safe.
    #[test]
    fn each_state_says_whether_a_rerun_is_safe() {
        let released = Released {
            released: vec!["ferry-claim_staging_v1_1_00".into()],
            left: vec![],
        };
        // (name, what was under way, exit code, words the message must carry, safe?)
        let cases: Vec<(&str, InFlight, u8, Vec<&str>, bool)> = vec![
            (
                "nothing yet",
                of(vec![], None),
                1,
                vec!["no service was changed"],
                true,
            ),
            (
                "a copy",
                of(vec![], Some("reg/app:v1.0.0")),
                1,
                vec!["promotion copy to reg/app:v1.0.0"],
                true,
            ),
            (
                "copies of two images",
                InFlight {
                    services: vec![],
                    copying: vec!["reg/web:v1.0.0".into(), "reg/worker:v1.0.0".into()],
                },
                1,
                vec!["promotion copies to reg/web:v1.0.0, reg/worker:v1.0.0 were under way"],
                true,
            ),
            (
                "a revision registered only",
                of(vec![svc(Phase::Registered)], None),
                1,
                vec!["web:5 is registered for c/web"],
                true,
            ),
            (
                "an update sent, no answer",
                of(vec![svc(Phase::Updating)], None),
                5,
                vec!["c/web: the update from web:4 to web:5 was sent"],
                true,
            ),
            (
                "a rollout in flight",
                of(vec![svc(Phase::RollingOut)], None),
                5,
                vec![
                    "deployment ecs-svc/123 of web:5 (from web:4) is still rolling out",
                    "ECS carries it on",
                ],
                true,
            ),
            (
                "smoke checks under way",
                of(vec![svc(Phase::RolledOut(true))], None),
                5,
                vec!["c/web runs web:5", "smoke checks had not passed"],
                true,
            ),
            (
                "a failed rollout",
                of(vec![svc(Phase::RolledOut(false))], None),
                5,
                vec!["rollout of deployment ecs-svc/123 of web:5 on c/web had failed"],
                false,
            ),
            (
                "mid-rollback",
                of(vec![svc(Phase::RollingBack)], None),
                5,
                vec!["c/web was being rolled back from deployment ecs-svc/123 of web:5 to web:4"],
                false,
            ),
            (
                "rolled back, record unwritten",
                of(vec![svc(Phase::RolledBack)], None),
                5,
                vec!["brought back from web:5"],
                false,
            ),
        ];
        for (name, in_flight, code, words, safe) in cases {
            let i = interruption("SIGTERM (job cancelled?)", &in_flight, &released);
            assert_eq!(i.kind.exit_code(), code, "{name}");
            assert!(
                i.message.starts_with("stopped by SIGTERM"),
                "{name}: {}",
                i.message
            );
            assert!(
                i.message.contains("released its claim on the environment"),
                "{name}: {}",
                i.message
            );
            for w in words {
                assert!(i.message.contains(w), "{name}: {w:?} not in {}", i.message);
            }
            assert_eq!(
                i.hint.contains("a re-run is safe"),
                safe,
                "{name}: {}",
                i.hint
            );
            assert_eq!(i.hint.contains("NOT safe"), !safe, "{name}: {}", i.hint);
        }
    }

    #[test]
    fn a_claim_left_behind_is_said() {
        let released = Released {
            released: vec![],
            left: vec![("ferry-claim_x".into(), "no answer within 5s".into())],
        };
        let i = interruption("an interrupt (Ctrl-C)", &of(vec![], None), &released);
        assert!(
            i.message
                .contains("could not release its claim ferry-claim_x (no answer within 5s)"),
            "{}",
            i.message
        );
        assert!(i.hint.contains("lapses within 120s"), "{}", i.hint);
    }
}
