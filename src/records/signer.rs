//! The signing half of signed records: an environment's KMS key signs each record's canonical
//! form (`super::sign`) when the record is written (`super::store`).

use anyhow::{Context, Result};

use super::oci;
use super::sign::{PublicKey, Signature};
use super::Record;

/// What signs this environment's records: its KMS key, and the pinned public half's
/// fingerprint (named in each signature).
#[derive(Debug, Clone)]
pub struct Signer {
    client: aws_sdk_kms::Client,
    key: String,
    fingerprint: String,
}

impl Signer {
    /// `key` (the KMS key) whose public half is `pem`, called with `sdk`'s credentials.
    pub fn new(sdk: &aws_config::SdkConfig, key: &str, pem: &str) -> Result<Signer> {
        Ok(Signer {
            client: crate::aws::kms::client(sdk),
            key: key.to_string(),
            fingerprint: PublicKey::from_pem(pem)?.fingerprint().to_string(),
        })
    }

    /// Signs `record`'s canonical form.
    pub async fn sign(&self, record: &Record) -> Result<Signature> {
        let msg = oci::signed_bytes(record)?;
        let der = crate::aws::kms::sign(&self.client, &self.key, &msg)
            .await
            .with_context(|| format!("signing the record with {}", self.key))?;
        Ok(Signature {
            key: self.fingerprint.clone(),
            der,
        })
    }
}
