//! The canonical form, the signature's text, and verification against generated P-256 keys
//! (signed here as KMS signs: ECDSA_SHA_256 over the raw bytes, DER).

use std::collections::BTreeMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;

use super::*;

const REQ: [(&str, &str); 8] = [
    (key::ENVIRONMENT, "staging"),
    (key::TAG, "v1.1.0-rc.1"),
    (key::DIGEST, "sha256:aa"),
    (key::RESULT, "succeeded"),
    (key::KIND, "deploy"),
    (key::RUN, "1-abc"),
    (key::STARTED, "2026-11-23T10:00:00Z"),
    (key::CREATED, "2026-11-23T10:05:00Z"),
];

struct TestKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
    pem: String,
}

fn test_key() -> TestKey {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    TestKey {
        public: PublicKey::from_pem(&pem).unwrap(),
        pem,
        pair,
    }
}

fn annotations() -> BTreeMap<String, String> {
    REQ.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([(key::TITLE.to_string(), "record.json".to_string())])
        .collect()
}

/// `a` signed by `k` (the signature annotation added).
fn signed(a: &BTreeMap<String, String>, k: &TestKey) -> BTreeMap<String, String> {
    let msg = canonical_of(a).unwrap();
    let der = k.pair.sign(&SystemRandom::new(), &msg).unwrap();
    let sig = Signature {
        key: k.public.fingerprint().to_string(),
        der: der.as_ref().to_vec(),
    };
    let mut out = a.clone();
    out.insert(key::SIGNATURE.into(), sig.to_text());
    out
}

#[test]
fn the_canonical_form_is_stable_across_field_order() {
    let forward = canonical(VERSION, &REQ).unwrap();
    let mut reversed = REQ.to_vec();
    reversed.reverse();
    assert_eq!(canonical(VERSION, &reversed).unwrap(), forward);
    let text = String::from_utf8(forward).unwrap();
    assert!(text.starts_with("ferry.release-record.signed/v1\n{\"dev.ferry.digest\":"));
    // Annotations the form does not cover (the layer title, the signature) change nothing.
    assert_eq!(canonical_of(&annotations()).unwrap(), text.as_bytes());
    // An optional field is covered when present.
    let mut more = REQ.to_vec();
    more.push((key::REPLACED, "v1.0.0-rc.1"));
    assert_ne!(canonical(VERSION, &more).unwrap(), text.as_bytes());
}

#[test]
fn the_canonical_form_refuses_duplicates_unknown_fields_versions_and_gaps() {
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "duplicate",
            VERSION,
            [&REQ[..], &[(key::RESULT, "rolled-back")]].concat(),
            "given twice",
        ),
        (
            "duplicate, same value",
            VERSION,
            [&REQ[..], &[(key::TAG, "v1.1.0-rc.1")]].concat(),
            "given twice",
        ),
        (
            "unknown field",
            VERSION,
            [&REQ[..], &[("dev.ferry.extra", "x")]].concat(),
            "not a signed field",
        ),
        (
            "missing field",
            VERSION,
            REQ[1..].to_vec(),
            "dev.ferry.environment is missing",
        ),
        (
            "unknown version",
            "v2",
            REQ.to_vec(),
            "version \"v2\" is unknown",
        ),
        ("no version", "", REQ.to_vec(), "is unknown"),
    ];
    for (name, version, fields, want) in cases {
        let e = canonical(version, &fields).expect_err(name).to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
}

#[test]
fn signatures_round_trip_and_unknown_versions_are_refused() {
    let s = Signature {
        key: "0123456789abcdef".into(),
        der: vec![0x30, 0x44, 1, 2, 3],
    };
    assert_eq!(Signature::parse(&s.to_text()).unwrap(), s);
    let text = s.to_text();
    for bad in [
        text.replacen("v1:", "v2:", 1),
        text.replacen("v1:", "", 1),
        format!("{text}:x"),
        text.replace("0123456789abcdef", "0123456789ABCDEF"),
        text.replace("0123456789abcdef", "0123"),
        "v1:0123456789abcdef:".into(),
        "v1:0123456789abcdef:!!".into(),
        format!("v1:0123456789abcdef:{}", "A".repeat(200)),
    ] {
        assert!(Signature::parse(&bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn verification_names_what_is_wrong() {
    let k = test_key();
    let other = test_key();
    let good = signed(&annotations(), &k);
    let fp = k.public.fingerprint().to_string();
    assert_eq!(
        verify(&good, std::slice::from_ref(&k.public)),
        Trust::Verified(fp.clone())
    );
    // Rotation: any trusted key verifies.
    assert_eq!(
        verify(&good, &[other.public.clone(), k.public.clone()]),
        Trust::Verified(fp)
    );
    // No keys: not checked, as before signing.
    assert_eq!(verify(&annotations(), &[]), Trust::Unchecked);
    assert_eq!(
        verify(&annotations(), std::slice::from_ref(&k.public)),
        Trust::Unsigned
    );
    let invalid =
        |a: &BTreeMap<String, String>, keys: &[PublicKey], want: &str| match verify(a, keys) {
            Trust::Invalid(why) => assert!(why.contains(want), "{want}: {why}"),
            t => panic!("{want}: {t:?}"),
        };
    invalid(
        &good,
        std::slice::from_ref(&other.public),
        "not trusted here",
    );
    invalid(
        &signed(&annotations(), &other),
        std::slice::from_ref(&k.public),
        "not trusted here",
    );
    for (field, value) in [
        (key::RESULT, "rolled-back"),
        (key::DIGEST, "sha256:bb"),
        (key::TAG, "v1.1.0-rc.3"),
        (key::REPLACED, "v1.0.0"),
    ] {
        let mut changed = good.clone();
        changed.insert(field.into(), value.into());
        invalid(
            &changed,
            std::slice::from_ref(&k.public),
            "does not match its contents",
        );
    }
    let mut gap = good.clone();
    gap.remove(key::RUN);
    invalid(&gap, std::slice::from_ref(&k.public), "incomplete");
    let mut garbage = good.clone();
    garbage.insert(key::SIGNATURE.into(), "v1:nope".into());
    invalid(&garbage, std::slice::from_ref(&k.public), "does not parse");
    // A valid signature moved onto another record's fields does not hold there either.
    let mut moved = annotations();
    moved.insert(key::TAG.into(), "v1.1.0-rc.3".into());
    moved.insert(key::SIGNATURE.into(), good[key::SIGNATURE].clone());
    invalid(&moved, std::slice::from_ref(&k.public), "does not match");
    assert!(Trust::Unsigned
        .ignored("ferry-record_x")
        .unwrap()
        .starts_with("unsigned record ferry-record_x ignored"));
    assert!(PublicKey::from_pem(&k.pem.replace("PUBLIC KEY", "PRIVATE KEY")).is_err());
    // One line (as an environment variable carries it) is the same key.
    let line = k.pem.replace('\n', " ");
    assert_eq!(
        PublicKey::from_pem(&line).unwrap().fingerprint(),
        k.public.fingerprint()
    );
    assert!(
        PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err()
    );
}

proptest::proptest! {
    #[test]
    fn the_signature_parser_never_panics(s in "\\PC{0,300}") {
        let _ = Signature::parse(&s);
    }

    #[test]
    fn the_signature_parser_never_panics_near_valid(s in "v[0-9]:[0-9a-fA-F]{0,18}:[A-Za-z0-9+/=]{0,120}(:.{0,4})?") {
        if let Ok(sig) = Signature::parse(&s) {
            proptest::prop_assert_eq!(Signature::parse(&sig.to_text()).ok(), Some(sig));
        }
    }

    #[test]
    fn verification_never_panics_on_any_signature_text(s in "\\PC{0,200}") {
        let k = test_key();
        let mut a = annotations();
        a.insert(key::SIGNATURE.into(), s);
        proptest::prop_assert!(!matches!(verify(&a, &[k.public]), Trust::Verified(_)));
    }
}
