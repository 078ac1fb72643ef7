//! Table tests of the memory's decisions: each row names the rule it pins.

use super::*;

const NOW: u64 = 1_800_000_000;

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn rec(tag: &str, digest: &str, result: RecordResult, ended: u64) -> Summary {
    Summary {
        images: Default::default(),
        environment: "staging".into(),
        tag: tag.into(),
        digest: digest.into(),
        result,
        kind: RunKind::Deploy,
        run: format!("{ended}-0"),
        started_at: ended - 60,
        ended_at: ended,
        record: format!("sha256:{:064}", ended),
        trust: crate::records::sign::Trust::Unchecked,
    }
}

fn cand(n: u64, tag_digest: Option<char>, records: Vec<Summary>, in_flight: bool) -> Candidate {
    Candidate {
        tag: format!("v1.1.0-rc.{n}"),
        version: semver::Version::parse(&format!("1.1.0-rc.{n}")).unwrap(),
        tag_digest: tag_digest.map(d),
        records,
        in_flight,
    }
}

use RecordResult::{NeedsAttention, RolledBack, Succeeded};

#[test]
fn candidate_states() {
    let cases: Vec<(&str, Candidate, CandidateState)> = vec![
        (
            "no record: never deployed",
            cand(1, Some('a'), vec![], false),
            CandidateState::NeverDeployed,
        ),
        (
            "last run succeeded with the tag's digest",
            cand(
                1,
                Some('a'),
                vec![rec("v1.1.0-rc.1", &d('a'), Succeeded, NOW - 600)],
                false,
            ),
            CandidateState::Passed,
        ),
        (
            "the tag expired: the record still vouches for the digest",
            cand(
                1,
                None,
                vec![rec("v1.1.0-rc.1", &d('a'), Succeeded, NOW - 600)],
                false,
            ),
            CandidateState::Passed,
        ),
        (
            "rolled back",
            cand(
                2,
                Some('b'),
                vec![rec("v1.1.0-rc.2", &d('b'), RolledBack, NOW - 600)],
                false,
            ),
            CandidateState::Failed { result: RolledBack },
        ),
        (
            "the last of several runs decides",
            cand(
                2,
                Some('b'),
                vec![
                    rec("v1.1.0-rc.2", &d('b'), NeedsAttention, NOW - 60),
                    rec("v1.1.0-rc.2", &d('b'), Succeeded, NOW - 600),
                ],
                false,
            ),
            CandidateState::Failed {
                result: NeedsAttention,
            },
        ),
        (
            "re-pushed after it passed: moved",
            cand(
                1,
                Some('c'),
                vec![rec("v1.1.0-rc.1", &d('a'), Succeeded, NOW - 600)],
                false,
            ),
            CandidateState::Moved { verified: d('a') },
        ),
        (
            "a live claim: in flight",
            cand(3, Some('c'), vec![], true),
            CandidateState::InFlight,
        ),
    ];
    for (name, c, want) in cases {
        assert_eq!(candidate_state(&c), want, "{name}");
    }
}

fn gate(
    cands: Vec<Candidate>,
    from: Option<&str>,
    soak: Option<u64>,
    history: &[Summary],
) -> Result<Promotion, Refusal> {
    let v = semver::Version::new(1, 1, 0);
    promotion(&GateInput {
        version: &v,
        source: "staging",
        candidates: cands,
        from,
        soak_minutes: soak,
        source_history: history,
        now: NOW,
    })
}

#[test]
fn the_promotion_gate() {
    let passed1 = || {
        cand(
            1,
            Some('a'),
            vec![rec("v1.1.0-rc.1", &d('a'), Succeeded, NOW - 3600)],
            false,
        )
    };
    let failed2 = || {
        cand(
            2,
            Some('b'),
            vec![rec("v1.1.0-rc.2", &d('b'), RolledBack, NOW - 1800)],
            false,
        )
    };
    let passed3 = || {
        cand(
            3,
            Some('c'),
            vec![rec("v1.1.0-rc.3", &d('c'), Succeeded, NOW - 600)],
            false,
        )
    };
    // (name, candidates, --from, soak, expected: Ok(promoted tag) or Err(substrings))
    type Case = (
        &'static str,
        Vec<Candidate>,
        Option<&'static str>,
        Option<u64>,
        Result<&'static str, Vec<&'static str>>,
    );
    let cases: Vec<Case> = vec![
        (
            "the highest candidate passed",
            vec![passed1(), passed3(), failed2()],
            None,
            None,
            Ok("v1.1.0-rc.3"),
        ),
        (
            "the highest failed: refused, every candidate listed",
            vec![passed1(), failed2()],
            None,
            None,
            Err(vec![
                "v1.1.0-rc.2, failed (rolled-back)",
                "v1.1.0-rc.1",
                "passed",
                "sha256:aaaa",
            ]),
        ),
        (
            "--from an older candidate that passed",
            vec![passed1(), failed2()],
            Some("v1.1.0-rc.1"),
            None,
            Ok("v1.1.0-rc.1"),
        ),
        (
            "--from a failed candidate",
            vec![passed1(), failed2()],
            Some("v1.1.0-rc.2"),
            None,
            Err(vec!["--from", "failed"]),
        ),
        (
            "--from an unknown candidate",
            vec![passed1()],
            Some("v1.1.0-rc.9"),
            None,
            Err(vec!["no release candidate v1.1.0-rc.9"]),
        ),
        (
            "the highest was never deployed",
            vec![passed1(), cand(2, Some('b'), vec![], false)],
            None,
            None,
            Err(vec!["never deployed"]),
        ),
        (
            "the highest is deploying now",
            vec![passed1(), cand(2, Some('b'), vec![], true)],
            None,
            None,
            Err(vec!["deploying now"]),
        ),
        (
            "the highest tag moved after it passed",
            vec![cand(
                1,
                Some('z'),
                vec![rec("v1.1.0-rc.1", &d('a'), Succeeded, NOW - 600)],
                false,
            )],
            None,
            None,
            Err(vec!["tag moved", "verified sha256:aaaa"]),
        ),
        (
            "no candidate at all",
            vec![],
            None,
            None,
            Err(vec!["release v1.1.0-rc.N to staging first"]),
        ),
        (
            "soaked long enough (live 10 min, 5 asked)",
            vec![passed3()],
            None,
            Some(5),
            Ok("v1.1.0-rc.3"),
        ),
        (
            "not soaked (live 10 min, 30 asked)",
            vec![passed3()],
            None,
            Some(30),
            Err(vec![
                "has been live in staging for 10m00s of the 30 minutes",
                "wait 20m00s",
            ]),
        ),
    ];
    for (name, cands, from, soak, want) in cases {
        let got = gate(cands, from, soak, &[]);
        match (got, want) {
            (Ok(p), Ok(tag)) => assert_eq!(p.tag, tag, "{name}"),
            (Err(r), Err(needles)) => {
                let text = format!("{}\n{}", r.message, r.hint);
                for n in needles {
                    assert!(text.contains(n), "{name}: {n:?} not in {text}");
                }
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn the_digest_comes_from_the_record() {
    let p = gate(
        vec![cand(
            1,
            None,
            vec![rec("v1.1.0-rc.1", &d('a'), Succeeded, NOW - 600)],
            false,
        )],
        None,
        None,
        &[],
    )
    .unwrap();
    assert_eq!(p.record.digest, d('a'));
}

#[test]
fn soak_ends_when_another_release_replaced_it() {
    let r1 = rec("v1.1.0-rc.1", &d('a'), Succeeded, NOW - 3600);
    let replaced = rec("v1.2.0-rc.1", &d('x'), Succeeded, NOW - 3600 + 120);
    let failed_attempt = rec("v1.2.0-rc.2", &d('y'), RolledBack, NOW - 3600 + 60);
    let history = vec![r1.clone(), failed_attempt, replaced];
    let err = gate(
        vec![cand(1, Some('a'), vec![r1], false)],
        None,
        Some(5),
        &history,
    )
    .unwrap_err();
    assert!(
        err.message.contains("was live in staging for 2m00s"),
        "{}",
        err.message
    );
    assert!(
        err.hint.contains("replaced before it soaked"),
        "{}",
        err.hint
    );
}

fn live(tag: &str) -> Summary {
    let mut s = rec(tag, &d('l'), Succeeded, NOW - 100);
    s.environment = "production".into();
    s
}

#[test]
fn run_kinds() {
    let v100 = semver::Version::new(1, 0, 0);
    let v110 = semver::Version::new(1, 1, 0);
    let v120 = semver::Version::new(1, 2, 0);
    let live110 = live("v1.1.0");
    let own100 = {
        let mut s = live("v1.0.0");
        s.digest = d('o');
        s
    };
    use TriggerSource::{Cli, Release, WorkflowDispatch};
    // (name, version, trigger, attempt, allow_downgrade, own record?, expected kind or refusal substring)
    type Case<'a> = (
        &'a str,
        &'a semver::Version,
        TriggerSource,
        u32,
        bool,
        Option<&'a Summary>,
        Result<(RunKind, bool), &'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "a newer release: deploy",
            &v120,
            Release,
            1,
            false,
            None,
            Ok((RunKind::Deploy, false)),
        ),
        (
            "the live release again: redeploy from its record",
            &v110,
            Cli,
            1,
            false,
            Some(&live110),
            Ok((RunKind::Redeploy, true)),
        ),
        (
            "--tag of an older release it ran: rollback from its own record",
            &v100,
            Cli,
            1,
            false,
            Some(&own100),
            Ok((RunKind::Rollback, true)),
        ),
        (
            "re-run (attempt 2) of an older release: rollback",
            &v100,
            Release,
            2,
            false,
            Some(&own100),
            Ok((RunKind::Rollback, true)),
        ),
        (
            "dispatch of an older release: rollback",
            &v100,
            WorkflowDispatch,
            1,
            false,
            Some(&own100),
            Ok((RunKind::Rollback, true)),
        ),
        (
            "a delayed first attempt of an older release: refused",
            &v100,
            Release,
            1,
            false,
            Some(&own100),
            Err("a newer release is live; re-run or dispatch to roll back"),
        ),
        (
            "a delayed first attempt, even with --allow-downgrade",
            &v100,
            Release,
            1,
            true,
            None,
            Err("started late"),
        ),
        (
            "an older release never deployed here: downgrade refused",
            &v100,
            Cli,
            1,
            false,
            None,
            Err("--allow-downgrade"),
        ),
        (
            "--allow-downgrade lets it through",
            &v100,
            Cli,
            1,
            true,
            None,
            Ok((RunKind::Rollback, false)),
        ),
    ];
    for (name, version, trigger, attempt, allow, own, want) in cases {
        let input = RunInput {
            environment: "production",
            tag: &format!("v{version}"),
            version,
            trigger,
            run_attempt: attempt,
            allow_downgrade: allow,
            live: Some(&live110),
            own,
            ran_before: None,
        };
        match (run_kind(&input, Some(&v110)), want) {
            (Ok(dec), Ok((kind, from_own))) => {
                assert_eq!((dec.kind, dec.own.is_some()), (kind, from_own), "{name}");
                assert_eq!(dec.from.as_deref(), Some("v1.1.0"), "{name}");
            }
            (Err(r), Err(needle)) => {
                let text = format!("{}\n{}", r.message, r.hint);
                assert!(text.contains(needle), "{name}: {needle:?} not in {text}");
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    // Nothing recorded yet: every release deploys.
    let input = RunInput {
        environment: "production",
        tag: "v1.0.0",
        version: &v100,
        trigger: Release,
        run_attempt: 1,
        allow_downgrade: false,
        live: None,
        own: None,
        ran_before: None,
    };
    assert_eq!(run_kind(&input, None).unwrap().kind, RunKind::Deploy);
}

fn claim(tag: &str, at: u64, nonce: &str) -> ClaimInfo {
    ClaimInfo {
        tag: crate::records::store::NamedTag {
            tag: tag.into(),
            environment: "staging".into(),
            release: "v1.0.0-rc.1".into(),
            time: at.to_string(),
            nonce: nonce.into(),
        },
        claimed_ms: at,
        expires_ms: at + 3_600_000,
        run_url: None,
        digest: String::new(),
        run_id: None,
        attempt: None,
        held: false,
    }
}

#[test]
fn overlapping_runs() {
    let now = NOW * 1000;
    let a = claim("a", now - 500, "11");
    let b = claim("b", now - 400, "00");
    let tie = claim("t", now - 500, "99");
    let stale = claim("s", now - 4_000_000, "00");
    // A live claim of attempt 1 of workflow run 7, seen by attempt 2: taken over at once.
    let attempt1 = ClaimInfo {
        run_id: Some("7".into()),
        attempt: Some(1),
        ..claim("e", now - 600, "00")
    };
    // (name, claims, mine, goes on?)
    let cases: Vec<(&str, Vec<ClaimInfo>, Option<&str>, bool)> = vec![
        ("alone", vec![a.clone()], Some("a"), true),
        (
            "the earlier claim goes on",
            vec![a.clone(), b.clone()],
            Some("a"),
            true,
        ),
        (
            "the later claim refuses",
            vec![a.clone(), b.clone()],
            Some("b"),
            false,
        ),
        (
            "a tie is broken by the nonce",
            vec![a.clone(), tie.clone()],
            Some("a"),
            true,
        ),
        (
            "a tie is broken by the nonce (loser)",
            vec![a.clone(), tie.clone()],
            Some("t"),
            false,
        ),
        (
            "a lapsed claim is ignored",
            vec![stale.clone(), b.clone()],
            Some("b"),
            true,
        ),
        ("plan: any live claim refuses", vec![b.clone()], None, false),
        ("plan: nothing claimed", vec![stale], None, true),
        (
            "an earlier attempt of this workflow run is taken over",
            vec![attempt1.clone(), b.clone()],
            Some("b"),
            true,
        ),
    ];
    let reader = crate::lease::Reader {
        now_ms: now,
        skew_ms: 30_000,
        me: Some(crate::lease::Attempt {
            run_id: "7".into(),
            attempt: 2,
        }),
    };
    for (name, claims, mine, goes_on) in cases {
        let got = overlap("staging", &claims, mine, &reader);
        assert_eq!(got.is_ok(), goes_on, "{name}: {got:?}");
        if let Err(r) = got {
            assert!(
                r.message
                    .contains("another run is deploying v1.0.0-rc.1 to staging"),
                "{name}: {}",
                r.message
            );
            assert!(
                r.hint.contains("lapses within 2m00s of its last renewal")
                    && r.hint.contains("--wait-for-idle")
                    && r.hint.contains("takes over its earlier attempt's claim"),
                "{name}: {}",
                r.hint
            );
        }
    }
}

#[path = "gate_claims_tests.rs"]
mod claims;

#[path = "gate_rollback_tests.rs"]
mod rollback;
