//! Table tests of `run_kind` for releases an environment ran before ferry's first record:
//! a rollback, not a downgrade (a child of `gate_tests`, sharing its fixtures).

use super::*;

#[test]
fn a_release_run_before_ferry_is_a_rollback_not_a_downgrade() {
    let v100 = semver::Version::new(1, 0, 0);
    let v110 = semver::Version::new(1, 1, 0);
    let live110 = live("v1.1.0");
    use TriggerSource::{Cli, Release, WorkflowDispatch};
    let seen = "shop/api ran it as shop-api:3 (…), by its task-definition history";
    // (name, trigger, attempt, seen before ferry, expected: Ok(kind, downgrade) or a needle)
    type Case<'a> = (
        &'a str,
        TriggerSource,
        u32,
        Option<&'a str>,
        Result<(RunKind, bool), &'a str>,
    );
    let cases: [Case; 5] = [
        (
            "re-run of the release event",
            Release,
            2,
            Some(seen),
            Ok((RunKind::Rollback, false)),
        ),
        (
            "dispatch",
            WorkflowDispatch,
            1,
            Some(seen),
            Ok((RunKind::Rollback, false)),
        ),
        ("cli", Cli, 1, Some(seen), Ok((RunKind::Rollback, false))),
        (
            "a delayed first attempt is still refused",
            Release,
            1,
            Some(seen),
            Err("started late"),
        ),
        (
            "not seen: a downgrade, with a hint GitHub can follow",
            WorkflowDispatch,
            1,
            None,
            Err("allow-downgrade = true"),
        ),
    ];
    for (name, trigger, attempt, ran_before, want) in cases {
        let input = RunInput {
            environment: "production",
            tag: "v1.0.0",
            version: &v100,
            trigger,
            run_attempt: attempt,
            allow_downgrade: false,
            live: Some(&live110),
            own: None,
            ran_before,
        };
        match (run_kind(&input, Some(&v110)), want) {
            (Ok(dec), Ok((kind, downgrade))) => {
                assert_eq!(
                    (dec.kind, dec.downgrade, dec.own),
                    (kind, downgrade, None),
                    "{name}"
                );
                assert_eq!(dec.from.as_deref(), Some("v1.1.0"), "{name}");
            }
            (Err(r), Err(needle)) => {
                let text = format!("{}\n{}", r.message, r.hint);
                assert!(text.contains(needle), "{name}: {needle:?} not in {text}");
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}
