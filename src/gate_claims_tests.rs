//! The claim protocol's reads (`first_look`, `settled`), table-tested.

use super::*;

/// The claim protocol's two reads (`first_look` right after claiming, `settled` after the
/// window), table-tested. `m` is this run's claim; `o` another run's, made at about the same
/// time; `h` another run's held claim.
#[test]
fn the_claim_protocol() {
    let now = NOW * 1000;
    let m = claim("m", now - 400, "11");
    let older = claim("o", now - 500, "00");
    let younger = claim("y", now - 300, "00");
    let held = |c: &ClaimInfo| ClaimInfo {
        held: true,
        ..c.clone()
    };
    let lapsed = ClaimInfo {
        expires_ms: now - 3_600_000,
        ..held(&older)
    };
    let reader = crate::lease::Reader {
        now_ms: now,
        skew_ms: 30_000,
        me: None,
    };
    // (name, claims, first look, settled goes on?)
    let cases: Vec<(&str, Vec<ClaimInfo>, Option<FirstLook>, bool)> = vec![
        ("alone", vec![m.clone()], Some(FirstLook::Alone), true),
        (
            "my own claim, already held, is still alone",
            vec![held(&m)],
            Some(FirstLook::Alone),
            true,
        ),
        (
            "a lapsed held claim is ignored",
            vec![lapsed, m.clone()],
            Some(FirstLook::Alone),
            true,
        ),
        (
            "another held claim refuses at once",
            vec![held(&older), m.clone()],
            None,
            false,
        ),
        (
            "an older unheld claim: settle, then the older goes on",
            vec![older.clone(), m.clone()],
            Some(FirstLook::Settle),
            false,
        ),
        (
            "a younger unheld claim: settle, then this run goes on",
            vec![younger.clone(), m.clone()],
            Some(FirstLook::Settle),
            true,
        ),
        (
            "a held claim refuses even when it is younger (it went on alone)",
            vec![held(&younger), m.clone()],
            None,
            false,
        ),
    ];
    for (name, claims, first, goes_on) in cases {
        let got = first_look("staging", &claims, "m", &reader);
        assert_eq!(got.as_ref().ok().copied(), first, "{name}: {got:?}");
        if let Err(r) = got {
            assert!(
                r.message.contains("another run is deploying"),
                "{name}: {}",
                r.message
            );
        }
        let got = settled("staging", &claims, "m", &reader);
        assert_eq!(got.is_ok(), goes_on, "{name}: {got:?}");
    }
}
