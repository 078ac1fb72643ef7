//! Signed records: the environment that writes a record signs (with its AWS KMS key, ECDSA
//! P-256, through `crate::aws::kms`) a canonical form of what the gate and rollback rely on,
//! and the signature travels as one more annotation of the record's manifest (ORAS and other
//! OCI tools read records as before). A reader verifies locally, against the public keys its
//! environment file pins: no call to the signer's account.
//!
//! Everything here is pure: the canonical form, the signature's text form and its parser, and
//! [`verify`], which says whether a record's annotations are [`Trust::Verified`] by one of the
//! given keys, [`Trust::Unsigned`], or [`Trust::Invalid`] (another key, other content, garbage).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_ASN1};
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::key;

/// The only version of the canonical form and of the signature's text.
pub const VERSION: &str = "v1";
/// The first line of the signed bytes: says what they are, so that they mean nothing else.
const DOMAIN: &str = "ferry.release-record.signed/v1";
/// The largest signature text accepted (a DER ECDSA P-256 signature is at most 72 bytes).
const MAX_SIGNATURE_TEXT: usize = 256;
/// The annotations a signature covers; the first eight are required (ferry writes the body's
/// digest on every record it signs, so a signature covers the whole body).
pub const SIGNED: [&str; 12] = [
    key::ENVIRONMENT,
    key::TAG,
    key::DIGEST,
    key::RESULT,
    key::KIND,
    key::RUN,
    key::STARTED,
    key::CREATED,
    key::REPLACED,
    key::PROMOTED_FROM,
    key::BODY,
    key::IMAGES,
];
const REQUIRED: usize = 8;

/// The bytes signed for `fields` (annotation key, value) under `version`: a domain line, then
/// compact JSON of the covered fields sorted by key. The same fields in any order give the
/// same bytes; a field given twice, a field the form does not cover, a required field missing
/// or another version is an error.
pub fn canonical(version: &str, fields: &[(&str, &str)]) -> Result<Vec<u8>> {
    if version != VERSION {
        bail!("signature version {version:?} is unknown (ferry knows {VERSION})");
    }
    let mut map = BTreeMap::new();
    for (k, v) in fields {
        if !SIGNED.contains(k) {
            bail!("{k} is not a signed field");
        }
        if map.insert(*k, *v).is_some() {
            bail!("{k} is given twice");
        }
    }
    if let Some(missing) = SIGNED[..REQUIRED].iter().find(|k| !map.contains_key(*k)) {
        bail!("{missing} is missing");
    }
    let mut out = format!("{DOMAIN}\n").into_bytes();
    out.extend(serde_json::to_vec(&map)?);
    Ok(out)
}

/// The canonical bytes of a record's annotations (the covered ones; others are left out).
pub fn canonical_of(annotations: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let fields: Vec<(&str, &str)> = annotations
        .iter()
        .filter(|(k, _)| SIGNED.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    canonical(VERSION, &fields)
}

/// A signature as carried in [`key::SIGNATURE`]: `v1:<key fingerprint>:<base64 DER>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// [`Fingerprint`] of the signing key's public half.
    pub key: String,
    /// The DER-encoded ECDSA signature.
    pub der: Vec<u8>,
}

impl Signature {
    /// The annotation's text.
    pub fn to_text(&self) -> String {
        format!(
            "{VERSION}:{}:{}",
            self.key,
            base64::engine::general_purpose::STANDARD.encode(&self.der)
        )
    }

    /// Parses [`Signature::to_text`]; any other text is an error, never a panic.
    pub fn parse(text: &str) -> Result<Signature> {
        if text.len() > MAX_SIGNATURE_TEXT {
            bail!("a signature of {} characters", text.len());
        }
        let mut parts = text.split(':');
        let (Some(version), Some(key), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("not <version>:<key>:<signature>");
        };
        if version != VERSION {
            bail!("signature version {version:?} is unknown (ferry knows {VERSION})");
        }
        if key.len() != 16
            || !key
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            bail!("key fingerprint {key:?} is not 16 lowercase hex digits");
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|e| anyhow!("signature is not base64: {e}"))?;
        if der.is_empty() || der.len() > 72 {
            bail!(
                "a signature of {} bytes is not an ECDSA P-256 one",
                der.len()
            );
        }
        Ok(Signature {
            key: key.to_string(),
            der,
        })
    }
}

/// A public key a reader trusts (ECDSA P-256), from its PEM (`BEGIN PUBLIC KEY`).
#[derive(Clone)]
pub struct PublicKey {
    key: ParsedPublicKey,
    fingerprint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint)
    }
}

impl PublicKey {
    /// Parses a PEM `SubjectPublicKeyInfo` of an ECDSA P-256 key (what `kms get-public-key`
    /// gives, base64 between the lines).
    pub fn from_pem(pem: &str) -> Result<PublicKey> {
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|b| b.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or_else(|| anyhow!("not a PEM public key (-----BEGIN PUBLIC KEY-----)"))?;
        let body: String = body.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| anyhow!("the PEM's body is not base64: {e}"))?;
        PublicKey::from_der(&der)
    }

    /// Parses a DER `SubjectPublicKeyInfo` (what KMS `GetPublicKey` answers).
    pub fn from_der(der: &[u8]) -> Result<PublicKey> {
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
            .map_err(|e| anyhow!("not an ECDSA P-256 public key (ECC_NIST_P256): {e}"))?;
        Ok(PublicKey {
            key,
            fingerprint: fingerprint(der),
        })
    }

    /// The key's fingerprint: the first 16 hex digits of the SHA-256 of its DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The first 16 hex digits of the SHA-256 of a DER public key.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))[..16].to_string()
}

/// What a reader makes of a record's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum Trust {
    /// No keys to check against: the record counts, as records did before signing.
    Unchecked,
    /// Signed by the trusted key with this fingerprint, over exactly these fields.
    Verified(String),
    /// No signature.
    Unsigned,
    /// A signature that does not hold: why.
    Invalid(String),
}

impl Trust {
    /// Whether the record may count in a decision (verified, or nothing to check against).
    pub fn counts(&self) -> bool {
        matches!(self, Trust::Unchecked | Trust::Verified(_))
    }

    /// No keys were there to check against.
    pub fn is_unchecked(&self) -> bool {
        *self == Trust::Unchecked
    }

    /// One word for tables: verified, unsigned, invalid, or `-` (not checked).
    pub fn word(&self) -> &'static str {
        match self {
            Trust::Unchecked => "-",
            Trust::Verified(_) => "verified",
            Trust::Unsigned => "unsigned",
            Trust::Invalid(_) => "invalid",
        }
    }

    /// Why the record is ignored, for messages (`unsigned record <tag> ignored: <why>`).
    pub fn ignored(&self, record: &str) -> Option<String> {
        match self {
            Trust::Unsigned => Some(format!(
                "unsigned record {record} ignored: it carries no signature"
            )),
            Trust::Invalid(why) => Some(format!("invalid record {record} ignored: {why}")),
            _ => None,
        }
    }
}

/// Whether `annotations` carry a valid signature by one of `keys`. No keys: [`Trust::Unchecked`].
pub fn verify(annotations: &BTreeMap<String, String>, keys: &[PublicKey]) -> Trust {
    if keys.is_empty() {
        return Trust::Unchecked;
    }
    let Some(text) = annotations.get(key::SIGNATURE) else {
        return Trust::Unsigned;
    };
    let sig = match Signature::parse(text) {
        Ok(s) => s,
        Err(e) => return Trust::Invalid(format!("its signature does not parse: {e:#}")),
    };
    let Some(k) = keys.iter().find(|k| k.fingerprint == sig.key) else {
        let known: Vec<&str> = keys.iter().map(|k| k.fingerprint()).collect();
        return Trust::Invalid(format!(
            "signed by key {}, which is not trusted here (trusted: {})",
            sig.key,
            known.join(", ")
        ));
    };
    let msg = match canonical_of(annotations) {
        Ok(m) => m,
        Err(e) => return Trust::Invalid(format!("its signed fields are incomplete: {e:#}")),
    };
    match k.key.verify_sig(&msg, &sig.der) {
        Ok(()) => Trust::Verified(k.fingerprint.clone()),
        Err(_) => Trust::Invalid(format!(
            "its signature by key {} does not match its contents (changed after signing)",
            sig.key
        )),
    }
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
