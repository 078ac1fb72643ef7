//! Signed release records (issue 17), through the CLI on the local world: staging's deploy role
//! signs each record with a KMS key in moto (real ECDSA P-256 signatures); production verifies
//! staging's records locally against the public key staging's file pins. Forgeries pushed with
//! nothing but the push right on staging's repository (tests/fixtures/forge_record.py) are
//! ignored and named; rotation trusts two keys at once; no key configured keeps the old
//! behaviour and says what it allows.

use base64::Engine as _;
use serde_json::Value;

use crate::common::*;
use crate::memory::World;

/// A KMS signing key (ECC_NIST_P256) in `account` of the world's moto: its ARN and public PEM.
pub async fn records_key(account: &str) -> (String, String) {
    let conf = setup_config(account).await;
    let kms = aws_sdk_kms::Client::new(&conf);
    let key = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let der = kms
        .get_public_key()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    (key.arn.unwrap(), pem)
}

/// `[records]` of a signing environment.
fn signs(key: &(String, String)) -> String {
    format!(
        "[records]\nsigning_key = \"{}\"\npublic_key = '''\n{}'''\n",
        key.0, key.1
    )
}

/// `[records]` of a promoting environment that lists the keys it trusts.
fn trusts(keys: &[&(String, String)]) -> String {
    let list: Vec<String> = keys.iter().map(|k| format!("'''\n{}'''", k.1)).collect();
    format!("[records]\ntrusted_keys = [{}]\n", list.join(", "))
}

impl World {
    /// A world whose staging signs its records with a fresh key (production trusts it through
    /// staging's pinned public key); returns the key.
    async fn signed() -> (World, (String, String)) {
        let mut w = World::new(None).await;
        let key = records_key(&w.spec.staging_account).await;
        w.spec.staging_extra = signs(&key);
        w.spec.write_to(w.dir.path());
        (w, key)
    }

    /// Forges a record in staging's repository from `source` (a record tag); its new tag.
    fn forge(&self, source: &str, args: &[&str]) -> String {
        self.staging
            .fixture("forge_record.py", &self.spec.repo, source, args)
    }

    fn status(&self, env: &str) -> String {
        let o = self.run("status", "", &[env, "--history", "20"], &[]);
        assert_exit(&o, 0);
        stdout(&o)
    }
}

fn record_tag(report: &Value) -> String {
    report["record"]["tag"].as_str().unwrap().to_string()
}

/// The history line of `tag` (a release) in `status`, newest first.
fn history_lines<'a>(status: &'a str, release: &str) -> Vec<&'a str> {
    status
        .lines()
        .filter(|l| l.starts_with("    2") && l.contains(&format!(" {release} ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_record_for_a_never_deployed_candidate_is_ignored_and_named() {
    let (w, _key) = World::signed().await;
    w.rc("v1.1.0-rc.1", "111", "healthy", "healthy").await;
    let rc1 = record_tag(&w.deploy_ok("v1.1.0-rc.1", 0));
    // CI pushes rc.3; staging never runs it.
    let rc3 = w.rc("v1.1.0-rc.3", "113", "healthy", "healthy").await;
    // With only the push right: rc.1's record rewritten for rc.3, signature dropped …
    let unsigned = w.forge(
        &rc1,
        &["--tag", "v1.1.0-rc.3", "--digest", &rc3, "--drop-signature"],
    );
    let o = w.deploy("v1.1.0", &[]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("unsigned record {unsigned} ignored")),
        "{err}"
    );
    assert_ne!(w.prod_version().await, "1.1.0-rc.3");
    // … or rc.1's signature kept over the rewritten fields.
    let kept = w.forge(&rc1, &["--tag", "v1.1.0-rc.3", "--digest", &rc3]);
    let o = w.deploy("v1.1.0", &[]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("invalid record {kept} ignored"))
            && err.contains("does not match its contents"),
        "{err}"
    );
    // The plan refuses alike, and staging's history marks each record.
    assert_exit(&w.plan("v1.1.0", &[]), 3);
    let status = w.status("staging");
    let rc1_lines = history_lines(&status, "v1.1.0-rc.1");
    assert!(
        rc1_lines.iter().all(|l| l.ends_with("verified")),
        "{status}"
    );
    let rc3_lines = history_lines(&status, "v1.1.0-rc.3");
    assert_eq!(rc3_lines.len(), 2, "{status}");
    assert!(
        rc3_lines.iter().any(|l| l.ends_with("unsigned")),
        "{status}"
    );
    assert!(rc3_lines.iter().any(|l| l.ends_with("invalid")), "{status}");
    // The real candidate still promotes: production verifies rc.1's record.
    let o = w.deploy("v1.1.0", &["--from", "v1.1.0-rc.1"]);
    assert_exit(&o, 0);
    assert_eq!(w.prod_version().await, "1.1.0-rc.1");
    // Staging pins its own key too: the forged records are not its memory either, so rc.3's
    // first real run is a deploy, not a redeploy of what the forgery claimed it ran.
    let staged = w.deploy_ok("v1.1.0-rc.3", 0);
    assert_eq!(staged["kind"], "deploy");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_signed_by_another_key_is_ignored() {
    let (w, _key) = World::signed().await;
    w.rc("v1.1.0-rc.1", "121", "healthy", "healthy").await;
    let rc1 = record_tag(&w.deploy_ok("v1.1.0-rc.1", 0));
    let rc3 = w.rc("v1.1.0-rc.3", "123", "healthy", "healthy").await;
    // The forger signs with a key of its own (in staging's account, even): ferry's canonical
    // form, a real signature, the wrong key.
    let (other, _) = records_key(&w.spec.staging_account).await;
    let forged = w.forge(
        &rc1,
        &[
            "--tag",
            "v1.1.0-rc.3",
            "--digest",
            &rc3,
            "--sign-with",
            &other,
            "--moto",
            &moto_url(),
            "--account",
            &w.spec.staging_account,
        ],
    );
    let o = w.deploy("v1.1.0", &[]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("invalid record {forged} ignored"))
            && err.contains("which is not trusted here"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_content_changed_after_signing_is_ignored() {
    let (w, _key) = World::signed().await;
    let rc1 = w.rc("v1.1.0-rc.1", "131", "healthy", "healthy").await;
    let good = record_tag(&w.deploy_ok("v1.1.0-rc.1", 0));
    // rc.3 fails in staging: its record says so, signed.
    w.rc("v1.1.0-rc.3", "133", "crash", "healthy").await;
    let failed = record_tag(&w.deploy_ok("v1.1.0-rc.3", 4));
    // The result flipped to succeeded, a minute later, signature kept.
    let flipped = w.forge(&failed, &["--result", "succeeded", "--later", "60"]);
    let o = w.deploy("v1.1.0", &[]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("invalid record {flipped} ignored")),
        "{err}"
    );
    // The digest swapped: rc.1 passed, its record now names rc.4's bytes (never deployed).
    let rc4 = w.rc("v1.1.0-rc.4", "134", "healthy", "healthy").await;
    let swapped = w.forge(
        &good,
        &["--tag", "v1.1.0-rc.4", "--digest", &rc4, "--later", "60"],
    );
    let o = w.deploy("v1.1.0", &[]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("invalid record {swapped} ignored")),
        "{err}"
    );
    // The real record still counts: rc.1, chosen by name, promotes its own bytes.
    let o = w.deploy("v1.1.0", &["--from", "v1.1.0-rc.1"]);
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["promotion"]["digest"], rc1.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_trusts_the_old_and_the_new_key_at_once() {
    let mut w = World::new(None).await;
    let old = records_key(&w.spec.staging_account).await;
    let new = records_key(&w.spec.staging_account).await;
    w.spec.staging_extra = signs(&old);
    w.spec.write_to(w.dir.path());
    w.rc("v1.1.0-rc.1", "141", "healthy", "healthy").await;
    w.deploy_ok("v1.1.0-rc.1", 0);
    // A production that trusts only the new key does not count the old key's record.
    w.spec.prod_extra = trusts(&[&new]);
    w.spec.write_to(w.dir.path());
    let o = w.plan("v1.1.0", &[]);
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("which is not trusted here"),
        "{}",
        stderr(&o)
    );
    // Listing both keys, it does.
    w.spec.prod_extra = trusts(&[&old, &new]);
    w.spec.write_to(w.dir.path());
    assert_exit(&w.plan("v1.1.0", &[]), 0);
    // The rotation as the README tells it: staging signs with the new key and keeps the old
    // one as retired; production lists nothing and inherits both.
    w.spec.prod_extra = String::new();
    w.spec.staging_extra = format!("{}retired_keys = ['''\n{}''']\n", signs(&new), old.1);
    w.spec.write_to(w.dir.path());
    w.rc("v1.2.0-rc.1", "142", "healthy", "healthy").await;
    w.deploy_ok("v1.2.0-rc.1", 0);
    // The old key's record still promotes …
    let o = w.deploy("v1.1.0", &[]);
    assert_exit(&o, 0);
    assert_eq!(w.prod_version().await, "1.1.0-rc.1");
    // … and so does the new key's.
    w.deploy_ok("v1.2.0", 0);
    assert_eq!(w.prod_version().await, "1.2.0-rc.1");
    // Staging's own history: both verified (the old key is retired, not forgotten).
    let status = w.status("staging");
    for rc in ["v1.1.0-rc.1", "v1.2.0-rc.1"] {
        let lines = history_lines(&status, rc);
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.ends_with("verified")),
            "{status}"
        );
    }
    // Retirement done: without the old key, production no longer counts its records.
    w.spec.staging_extra = signs(&new);
    w.spec.write_to(w.dir.path());
    let status = w.status("staging");
    assert!(
        history_lines(&status, "v1.1.0-rc.1")[0].ends_with("invalid"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_configured_warns_and_keeps_the_old_behaviour() {
    let w = World::new(None).await;
    w.rc("v1.1.0-rc.1", "151", "healthy", "healthy").await;
    let rc1 = record_tag(&w.deploy_ok("v1.1.0-rc.1", 0));
    let rc3 = w.rc("v1.1.0-rc.3", "153", "healthy", "healthy").await;
    let o = w.run("validate", "", &[], &[]);
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("records are unsigned"),
        "{}",
        stderr(&o)
    );
    w.forge(&rc1, &["--tag", "v1.1.0-rc.3", "--digest", &rc3]);
    let p = w.plan("v1.1.0", &[]);
    assert_exit(&p, 0);
    assert!(
        stderr(&p).contains("records are unsigned"),
        "{}",
        stderr(&p)
    );
    // As before signing: the unverified record promotes what it names, with the warning said.
    let o = w.deploy("v1.1.0", &[]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("records are unsigned")
            && err.contains("can write a record that promotes any image"),
        "{err}"
    );
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["promotion"]["digest"], rc3.as_str());
}
