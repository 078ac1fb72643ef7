//! `[records]`: the keys that sign and verify release records (`crate::records::sign`). A
//! pre-release environment names the KMS key its deploy role signs with and pins that key's
//! public half; a promoting environment trusts its source's pinned key, or lists the keys it
//! trusts itself (several at once while a key is rotated).

use serde::{Deserialize, Serialize};

use super::{Environment, Environments};

/// `[records]` of an environment file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    /// The KMS key (ARN, alias ARN or id; `SIGN_VERIFY`, `ECC_NIST_P256`) this environment's
    /// deploy role signs its records with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// The public half of `signing_key` (PEM), pinned: environments promoting from this one
    /// trust it unless they list `trusted_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Public keys (PEM) this environment signed with before `public_key` (a rotation): its
    /// records signed by them still count, here and where `public_key` is inherited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_keys: Vec<String>,
    /// The public keys (PEM) whose signatures this environment accepts on its source's
    /// records, instead of the source's `public_key` and `retired_keys`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_keys: Vec<String>,
}

impl RecordsConfig {
    /// Nothing configured (the file has no `[records]`).
    pub fn is_empty(&self) -> bool {
        self == &RecordsConfig::default()
    }

    /// The keys this environment's own records are checked against: `public_key` and
    /// `retired_keys` (none: not checked).
    pub fn own_keys(&self) -> Vec<String> {
        self.public_key
            .iter()
            .chain(&self.retired_keys)
            .cloned()
            .collect()
    }
}

/// Expands `${VAR}` in every field (the local world's key changes each run); a field that
/// cannot be expanded goes to `unexpanded` as (field, why).
pub(super) fn expand(r: &mut RecordsConfig, unexpanded: &mut Vec<(String, String)>) {
    let keys = r
        .signing_key
        .iter_mut()
        .map(|k| ("records.signing_key".to_string(), k));
    let keys = keys.chain(
        r.public_key
            .iter_mut()
            .map(|k| ("records.public_key".to_string(), k)),
    );
    let keys = keys.chain(
        r.retired_keys
            .iter_mut()
            .enumerate()
            .map(|(i, k)| (format!("records.retired_keys[{i}]"), k)),
    );
    let keys = keys.chain(
        r.trusted_keys
            .iter_mut()
            .enumerate()
            .map(|(i, k)| (format!("records.trusted_keys[{i}]"), k)),
    );
    for (field, k) in keys {
        match super::expand_vars(k, |k| std::env::var(k).ok()) {
            Ok(v) => *k = v,
            Err(e) => unexpanded.push((field, e)),
        }
    }
}

/// Whether `pem` is an ECDSA P-256 public key; why not.
fn check_pem(pem: &str) -> Result<(), String> {
    use base64::Engine as _;
    let Some(body) = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|b| b.strip_suffix("-----END PUBLIC KEY-----"))
    else {
        return Err(
            "is not a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----)"
                .into(),
        );
    };
    let body: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("is not base64 between its PEM lines: {e}"))?;
    aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, der)
        .map(|_| ())
        .map_err(|_| {
            "is not an ECDSA P-256 public key (create the KMS key with key spec ECC_NIST_P256)"
                .into()
        })
}

/// Field checks of `[records]`.
pub fn validate(env: &Environment) -> Vec<String> {
    let r = &env.file.records;
    let mut p = Vec::new();
    if let Some(k) = &r.signing_key {
        let ok = k.starts_with("arn:aws") && k.contains(":kms:")
            || (!k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !ok {
            p.push(format!("field `records.signing_key`: {k:?} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME) or key id"));
        }
        if r.public_key.is_none() {
            p.push("field `records.public_key`: missing; pin the public half of `records.signing_key` (aws kms get-public-key --key-id KEY --output text --query PublicKey, between -----BEGIN PUBLIC KEY----- and -----END PUBLIC KEY-----)".into());
        }
    } else if r.public_key.is_some() {
        p.push("field `records.public_key`: set without `records.signing_key`; name the KMS key it belongs to".into());
    }
    if let Some(k) = &r.public_key {
        if let Err(e) = check_pem(k) {
            p.push(format!("field `records.public_key`: {e}"));
        }
    }
    for (field, keys) in [
        ("retired_keys", &r.retired_keys),
        ("trusted_keys", &r.trusted_keys),
    ] {
        for (i, k) in keys.iter().enumerate() {
            if let Err(e) = check_pem(k) {
                p.push(format!("field `records.{field}[{i}]`: {e}"));
            }
        }
    }
    if !r.retired_keys.is_empty() && r.public_key.is_none() {
        p.push("field `records.retired_keys`: set without `records.public_key`; retired keys are the ones a signing environment used before its current key".into());
    }
    if !r.trusted_keys.is_empty() && env.file.promote.is_none() {
        p.push("field `records.trusted_keys`: only an environment with [promote] reads another environment's records; remove it".into());
    }
    p
}

impl Environments {
    /// The public keys (PEM) `env` trusts on its source's records: its own `trusted_keys`, else
    /// the source's pinned `public_key` and `retired_keys`; empty when it does not promote or
    /// nothing is set.
    pub fn trusted_keys(&self, env: &Environment) -> Vec<String> {
        if !env.file.records.trusted_keys.is_empty() {
            return env.file.records.trusted_keys.clone();
        }
        self.source_of(env)
            .map(|s| s.file.records.own_keys())
            .unwrap_or_default()
    }

    /// What to say when `env` promotes on records nobody can verify: `None` when it verifies.
    pub fn unsigned_warning(&self, env: &Environment) -> Option<String> {
        let src = self.source_of(env)?;
        if !self.trusted_keys(env).is_empty() {
            return None;
        }
        Some(format!(
            "records are unsigned: {} promotes on {}'s release records without verifying them, so anyone who can push to {}'s repository (the CI job that pushes release candidates, and whatever it runs) can write a record that promotes any image; set [records] signing_key and public_key in {} (see README, \"Signed records\")",
            env.name,
            src.name,
            src.name,
            src.path.display()
        ))
    }
}
