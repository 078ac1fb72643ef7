//! Writing this run's claim (a child of `store`): pushing it, and re-writing it under its
//! tag to renew it or mark it held.

use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;

use super::*;

impl Store {
    /// Pushes this run's claim on the environment for `release`, lapsing after `ttl_ms` unless
    /// renewed; `run` is the workflow run's id and attempt (in GitHub Actions).
    pub async fn claim(
        &self,
        release: &str,
        ttl_ms: u64,
        run_url: Option<&str>,
        run: Option<(&str, u32)>,
    ) -> Result<ClaimInfo> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let nonce = format!("{:08x}", rand::random::<u32>());
        let tag = make_tag(
            CLAIM_PREFIX,
            &self.environment,
            release,
            &now.to_string(),
            &nonce,
        )?;
        let mut claim = ClaimInfo {
            tag: parse_tag(&tag, CLAIM_PREFIX)
                .ok_or_else(|| anyhow!("claim tag {tag} does not parse"))?,
            claimed_ms: now,
            expires_ms: now + ttl_ms,
            run_url: run_url.map(str::to_string),
            digest: String::new(),
            run_id: run.map(|r| r.0.to_string()),
            attempt: run.map(|r| r.1),
            held: false,
        };
        claim.digest = self
            .put_claim(&claim, true)
            .await
            .with_context(|| format!("claiming {} in {}", self.environment, self.location()))?;
        Ok(claim)
    }

    /// Renews `claim` until `expires_ms`: the same tag, re-written with the new expiry. The
    /// manifest it replaces is removed (best effort). Returns the claim as it is now.
    pub async fn renew(&self, claim: &ClaimInfo, expires_ms: u64) -> Result<ClaimInfo> {
        let renewed = self.rewrite(claim, expires_ms).await?;
        self.drop_replaced(claim, &renewed).await;
        Ok(renewed)
    }

    /// `claim` re-written under its tag with `expires_ms` (and its `held` mark), in one
    /// request: its blobs were pushed with it. The manifest it replaces stays, for
    /// [`Store::drop_replaced`].
    pub async fn rewrite(&self, claim: &ClaimInfo, expires_ms: u64) -> Result<ClaimInfo> {
        let mut renewed = claim.clone();
        renewed.expires_ms = expires_ms;
        renewed.digest = self.put_claim(&renewed, false).await.with_context(|| {
            format!(
                "renewing the claim {} in {}",
                claim.tag.tag,
                self.location()
            )
        })?;
        Ok(renewed)
    }

    /// Removes the manifest `now` replaced under the claim's tag (best effort).
    pub async fn drop_replaced(&self, before: &ClaimInfo, now: &ClaimInfo) {
        if now.digest == before.digest {
            return;
        }
        if let Err(e) =
            referrers::delete_manifest(&self.client, &self.repository, &before.digest).await
        {
            tracing::debug!(
                "removing the replaced claim manifest {}: {e:#}",
                before.digest
            );
        }
    }

    /// Writes the claim manifest under its tag; `blobs` pushes its blobs first (a new claim).
    async fn put_claim(&self, claim: &ClaimInfo, blobs: bool) -> Result<String> {
        let mut ann = BTreeMap::from([
            (oci::key::ENVIRONMENT.to_string(), self.environment.clone()),
            (oci::key::TAG.to_string(), claim.tag.release.clone()),
            (oci::key::CLAIMED.to_string(), claim.claimed_ms.to_string()),
            (
                oci::key::CREATED.to_string(),
                crate::records::rfc3339_of(claim.claimed_ms / 1000),
            ),
        ]);
        if let Some(u) = &claim.run_url {
            ann.insert(RUN_URL_KEY.into(), u.clone());
        }
        if let (Some(id), Some(attempt)) = (&claim.run_id, claim.attempt) {
            ann.insert(RUN_ID_KEY.into(), id.clone());
            ann.insert(RUN_ATTEMPT_KEY.into(), attempt.to_string());
        }
        let body = serde_json::to_vec(&ann)?;
        ann.insert(oci::key::EXPIRES.to_string(), claim.expires_ms.to_string());
        if claim.held {
            ann.insert(HELD_KEY.into(), "true".into());
        }
        let enc = oci::encode(CLAIM_TYPE, body.into(), None, ann, "claim.json")?;
        if blobs {
            self.push_blob(EMPTY_DIGEST, bytes::Bytes::from_static(b"{}"))
                .await?;
            self.push_blob(&enc.blob_digest, enc.blob.clone()).await?;
        }
        self.client
            .put_manifest(&self.repository, &claim.tag.tag, &enc.manifest)
            .await?;
        Ok(enc.manifest.digest.to_string())
    }
}
