//! The records key's documents: the signing environment's role may use `kms:Sign` on its key
//! and nobody else may (the key policy denies `kms:Sign` to every other principal, the CI role
//! that pushes release candidates included). Verification needs no grant: readers verify
//! locally against the public key pinned in their environment file.

use serde_json::{json, Value};

use super::{partition, statement};
use crate::config::Environment;

/// The key's ARN for IAM: `records.signing_key` when it is a key ARN, else a placeholder.
fn key_arn(env: &Environment) -> Option<String> {
    let k = env.file.records.signing_key.as_ref()?;
    Some(if k.starts_with("arn:") && k.contains(":key/") {
        k.clone()
    } else {
        format!(
            "arn:{}:kms:{}:{}:key/<KEY ID of {k}>",
            partition(&env.file.region),
            env.file.region,
            env.file.account_id
        )
    })
}

/// The role policy's statement for signing records, when `env` signs them.
pub fn sign_statement(env: &Environment) -> Option<Value> {
    Some(statement("RecordsSign", &["kms:Sign"], vec![key_arn(env)?]))
}

/// The policy of `env`'s records key: the account administers it (every action but signing),
/// and only `env`'s role signs, with ECDSA_SHA_256. `None` when `env` does not sign.
pub fn key_policy(env: &Environment) -> Option<Value> {
    key_arn(env)?;
    let root = format!(
        "arn:{}:iam::{}:root",
        partition(&env.file.region),
        env.file.account_id
    );
    let role = &env.file.role.arn;
    Some(json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyAdministration",
                "Effect": "Allow",
                "Principal": { "AWS": root },
                "Action": [
                    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias",
                    "kms:DescribeKey", "kms:DisableKey", "kms:EnableKey", "kms:GetKeyPolicy",
                    "kms:GetPublicKey", "kms:ListAliases", "kms:ListResourceTags",
                    "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:TagResource",
                    "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription"
                ],
                "Resource": "*"
            },
            {
                "Sid": "FerryRecordsSign",
                "Effect": "Allow",
                "Principal": { "AWS": role },
                "Action": "kms:Sign",
                "Resource": "*",
                "Condition": { "StringEquals": { "kms:SigningAlgorithm": "ECDSA_SHA_256" } }
            },
            {
                "Sid": "NobodyElseSigns",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "kms:Sign",
                "Resource": "*",
                "Condition": { "ArnNotEquals": { "aws:PrincipalArn": role } }
            }
        ]
    }))
}

/// The records key a key policy is for, for the heading.
pub fn key_of(e: &super::EnvironmentPolicies) -> Option<String> {
    e.role_policy["Statement"]
        .as_array()?
        .iter()
        .find(|st| st["Sid"] == "RecordsSign")
        .and_then(|st| st["Resource"][0].as_str().map(str::to_string))
}
