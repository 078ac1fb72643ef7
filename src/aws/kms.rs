//! The KMS calls ferry makes, one thin wrapper each: signing a release record's canonical bytes
//! with the environment's key (`crate::records::sign` says what is signed and verifies it,
//! locally, with no call to KMS).

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};

use super::reach::Reach;
use super::sts::BareThrottling;
use super::AwsResultExt;

/// A KMS client for `sdk` that also retries bare 429s ([`BareThrottling`]), with [`Reach`].
pub fn client(sdk: &SdkConfig) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(sdk)
            .retry_classifier(BareThrottling)
            .interceptor(Reach)
            .build(),
    )
}

/// Signs `message` (ECDSA_SHA_256 over the raw bytes) with `key` (id, ARN or alias); returns
/// the DER signature.
pub async fn sign(client: &aws_sdk_kms::Client, key: &str, message: &[u8]) -> Result<Vec<u8>> {
    let out = client
        .sign()
        .key_id(key)
        .message(Blob::new(message))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .aws("kms:Sign", key)?;
    Ok(out
        .signature()
        .context("kms:Sign answered without a signature")?
        .as_ref()
        .to_vec())
}
