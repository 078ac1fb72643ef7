//! Where records live: the environment's own repository. Writing a record, listing an
//! environment's records and claims (one tag listing), reading them back, and the claim a run
//! holds on its environment while it changes it (the overlap guard, see `crate::gate`): a lease,
//! renewed while the run lives (`crate::lease`, `crate::run::heartbeat`).

use crate::registry::digest::Digest;
use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};

use super::oci::{self, Desc, CLAIM_TYPE, EMPTY_DIGEST, RECORD_TYPE};
use super::sign::PublicKey;
use super::signer::Signer;
use super::{Record, Summary};
use crate::config::Environment;
use crate::registry::referrers::{self, Referrer, ReferrersPath};
use crate::registry::RegistryClient;

/// Tag prefix of a record: `ferry-record_<env>_<release>_<time>_<run>`.
pub const RECORD_PREFIX: &str = "ferry-record";
/// Tag prefix of a claim: `ferry-claim_<env>_<release>_<unix-ms>_<random>`.
pub const CLAIM_PREFIX: &str = "ferry-claim";
/// Tag prefix marking a claim released where the registry refuses manifest deletes:
/// `ferry-unclaim_<same suffix as the claim>`.
pub const UNCLAIM_PREFIX: &str = "ferry-unclaim";
/// A claim's annotation: the claiming run's URL.
const RUN_URL_KEY: &str = "dev.ferry.run-url";
/// A claim's annotation: the claiming run's `GITHUB_RUN_ID`.
const RUN_ID_KEY: &str = "dev.ferry.github-run-id";
/// A claim's annotation: the claiming run's `GITHUB_RUN_ATTEMPT`.
const RUN_ATTEMPT_KEY: &str = "dev.ferry.github-run-attempt";
/// A claim's annotation: `true` once its run found no other claim and went on (`crate::gate`).
const HELD_KEY: &str = "dev.ferry.claim-held";
/// OCI tags are at most 128 characters.
const MAX_TAG: usize = 128;

/// A parsed `ferry-record_…` or `ferry-claim_…` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTag {
    /// The whole tag.
    pub tag: String,
    /// The environment.
    pub environment: String,
    /// The release tag.
    pub release: String,
    /// A sortable time (`20261123T101500Z` for records, Unix ms for claims).
    pub time: String,
    /// Random suffix (records: the run's random part).
    pub nonce: String,
}

/// Parses a ferry tag with `prefix`; `None` for any other tag.
pub fn parse_tag(tag: &str, prefix: &str) -> Option<NamedTag> {
    let rest = tag.strip_prefix(prefix)?.strip_prefix('_')?;
    let mut parts: Vec<&str> = rest.split('_').collect();
    if parts.len() < 4 {
        return None;
    }
    let nonce = parts.pop()?;
    let time = parts.pop()?;
    let release = parts.pop()?;
    let environment = parts.join("_");
    (!environment.is_empty() && !release.is_empty()).then(|| NamedTag {
        tag: tag.to_string(),
        environment,
        release: release.to_string(),
        time: time.to_string(),
        nonce: nonce.to_string(),
    })
}

fn make_tag(prefix: &str, env: &str, release: &str, time: &str, nonce: &str) -> Result<String> {
    let t = format!("{prefix}_{env}_{release}_{time}_{nonce}");
    anyhow::ensure!(
        t.len() <= MAX_TAG
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "cannot name the tag {t:?}: OCI tags are at most {MAX_TAG} letters, digits, `.`, `_`, `-` (shorten the environment name)"
    );
    Ok(t)
}

/// The tags of one environment's repository that matter to ferry.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Every tag of the repository (release tags included).
    pub tags: Vec<String>,
    /// Record tags of this environment, oldest first.
    pub records: Vec<NamedTag>,
    /// Claim tags of this environment.
    pub claims: Vec<NamedTag>,
}

/// A claim as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimInfo {
    /// Its tag (ordering key: time, then nonce).
    pub tag: NamedTag,
    /// When it was made (Unix ms).
    pub claimed_ms: u64,
    /// When it lapses if its run never removes it (Unix ms).
    pub expires_ms: u64,
    /// The claiming run's URL, when in Actions.
    pub run_url: Option<String>,
    /// The claim manifest's digest (to delete it); it changes at each renewal.
    pub digest: String,
    /// The claiming run's `GITHUB_RUN_ID`, when in Actions.
    pub run_id: Option<String>,
    /// The claiming run's `GITHUB_RUN_ATTEMPT`, when in Actions.
    pub attempt: Option<u32>,
    /// Whether its run went on (it holds the environment); a claim is pushed unheld.
    pub held: bool,
}

/// What writing a record did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// The record manifest's digest.
    pub digest: String,
    /// Its tag.
    pub tag: String,
    /// How the registry links it to the image.
    pub referrers: ReferrersPath,
}

/// One environment's records, in its repository.
#[derive(Debug, Clone)]
pub struct Store {
    client: RegistryClient,
    repository: String,
    environment: String,
    /// Signs what this store writes (the environment's own key), when configured.
    signer: Option<Signer>,
    /// The keys records read here are checked against (none: not checked).
    keys: Vec<PublicKey>,
}

impl Store {
    /// A store over an existing registry client.
    pub fn new(client: RegistryClient, repository: &str, environment: &str) -> Store {
        Store {
            client,
            repository: repository.into(),
            environment: environment.into(),
            signer: None,
            keys: Vec::new(),
        }
    }

    /// This store checks every record it reads against `pems` (public keys, PEM).
    pub fn trusting(mut self, pems: &[String]) -> Result<Store> {
        self.keys = pems
            .iter()
            .map(|p| PublicKey::from_pem(p))
            .collect::<Result<_>>()
            .context("a trusted records key")?;
        Ok(self)
    }

    /// Splits `sums` into the records that may count in a decision and, for those ignored
    /// (unsigned or invalid where this store verifies), one line each naming the record by
    /// its tag in `names` (the same order as `sums`, as [`Store::summaries`] returns them).
    pub fn trusted(sums: Vec<Summary>, names: &[NamedTag]) -> (Vec<Summary>, Vec<String>) {
        let mut kept = Vec::new();
        let mut ignored = Vec::new();
        for (i, s) in sums.into_iter().enumerate() {
            let name = names.get(i).map_or(s.record.as_str(), |n| n.tag.as_str());
            match s.trust.ignored(name) {
                Some(why) => ignored.push(why),
                None => kept.push(s),
            }
        }
        (kept, ignored)
    }

    /// Opens `env`'s store with the role of `reader`, which reads it through the repository
    /// policy (production reading staging's records for the promotion gate).
    pub async fn open_as(env: &Environment, reader: &Environment) -> Result<Store> {
        if env.name == reader.name {
            return Store::open(env).await;
        }
        let sdk = crate::aws::sts::environment_config(reader).await?;
        let client = crate::promote::source_client(&sdk, env, reader).await?;
        Ok(Store::new(client, env.repository(), &env.name))
    }

    /// Opens `env`'s store with the role of `reader` (see [`Store::open_as`]), checking every
    /// record against the keys `reader` trusts on them.
    pub async fn open_trusting(
        env: &Environment,
        reader: &Environment,
        envs: &crate::config::Environments,
    ) -> Result<Store> {
        Store::open_as(env, reader)
            .await?
            .trusting(&envs.trusted_keys(reader))
            .with_context(|| format!("in {}", reader.path.display()))
    }

    /// Opens `env`'s store with its role.
    pub async fn open(env: &Environment) -> Result<Store> {
        let sdk = crate::aws::sts::environment_config(env).await?;
        let client = crate::registry::ecr::ecr_client(&sdk, &env.registry_host())
            .await
            .with_context(|| {
                format!(
                    "registry credentials for {} ({})",
                    env.name,
                    env.registry_host()
                )
            })?;
        let mut store = Store::new(client, env.repository(), &env.name)
            .trusting(&env.file.records.own_keys())
            .with_context(|| format!("in {}", env.path.display()))?;
        if let (Some(key), Some(pem)) =
            (&env.file.records.signing_key, &env.file.records.public_key)
        {
            store.signer = Some(Signer::new(&sdk, key, pem)?);
        }
        Ok(store)
    }

    /// `host/repository`, for messages.
    pub fn location(&self) -> String {
        format!("{}/{}", self.client.host(), self.repository)
    }

    /// The registry client.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Lists the repository's tags once and sorts out ferry's.
    pub async fn catalog(&self) -> Result<Catalog> {
        let tags = self
            .client
            .list_tags(&self.repository)
            .await
            .with_context(|| {
                format!(
                    "listing the records of {} in {}",
                    self.environment,
                    self.location()
                )
            })?;
        let mine = |prefix: &str| {
            let mut v: Vec<NamedTag> = tags
                .iter()
                .filter_map(|t| parse_tag(t, prefix))
                .filter(|n| n.environment == self.environment)
                .collect();
            v.sort_by(|a, b| (&a.time, &a.nonce).cmp(&(&b.time, &b.nonce)));
            v
        };
        let released: std::collections::BTreeSet<String> = mine(UNCLAIM_PREFIX)
            .into_iter()
            .map(|n| n.tag[UNCLAIM_PREFIX.len()..].to_string())
            .collect();
        let claims = mine(CLAIM_PREFIX)
            .into_iter()
            .filter(|n| !released.contains(&n.tag[CLAIM_PREFIX.len()..]))
            .collect();
        Ok(Catalog {
            records: mine(RECORD_PREFIX),
            claims,
            tags,
        })
    }

    /// The summaries of `records` (one manifest GET each), in the same order.
    pub async fn summaries(&self, records: &[NamedTag]) -> Result<Vec<Summary>> {
        let reads = records.iter().map(|n| async move {
            let m = self
                .client
                .get_manifest(&self.repository, &n.tag)
                .await?
                .ok_or_else(|| anyhow!("record {} vanished from {}", n.tag, self.location()))?;
            let a = oci::decode_manifest(&m.bytes, RECORD_TYPE)
                .with_context(|| format!("record {} in {}", n.tag, self.location()))?;
            oci::summary_of(&a.annotations, m.digest.as_str(), &self.keys)
        });
        futures_util::future::try_join_all(reads).await
    }

    /// Reads a whole record by its manifest digest.
    pub async fn read(&self, digest: &str) -> Result<Record> {
        let what = format!("record {}@{digest}", self.location());
        let m = self
            .client
            .get_manifest(&self.repository, digest)
            .await?
            .ok_or_else(|| anyhow!("{what} does not exist"))?;
        let a = oci::decode_manifest(&m.bytes, RECORD_TYPE).with_context(|| what.clone())?;
        let layer = &a.layers[0];
        let resp = self
            .client
            .get_blob(&self.repository, &Digest::parse(&layer.digest)?, layer.size)
            .await?
            .ok_or_else(|| anyhow!("{what}: its blob {} is missing", layer.digest))?;
        let blob = referrers::bounded_bytes(resp, oci::MAX_RECORD_BYTES)
            .await
            .with_context(|| format!("reading {what}"))?;
        oci::decode_record(&blob, &a).with_context(|| what)
    }

    /// The records whose subject is `digest`, through the referrers API or its fallback tag.
    pub async fn referrers(&self, digest: &str) -> Result<(Vec<Summary>, ReferrersPath)> {
        let (refs, path) =
            referrers::list_referrers(&self.client, &self.repository, digest, RECORD_TYPE).await?;
        let mut out = Vec::new();
        for r in refs {
            let s = oci::summary_of(&r.annotations, &r.digest, &self.keys)?;
            if s.environment == self.environment && s.digest == digest {
                out.push(s);
            }
        }
        Ok((out, path))
    }

    async fn push_blob(&self, digest: &str, bytes: bytes::Bytes) -> Result<()> {
        let digest = &Digest::parse(digest)?;
        if !self.client.has_blob(&self.repository, digest).await? {
            let size = bytes.len() as u64;
            self.client
                .upload_blob(&self.repository, digest, size, reqwest::Body::from(bytes))
                .await?;
        }
        Ok(())
    }

    /// Writes `record` next to its image (which must be in this repository).
    pub async fn write(&self, record: &Record) -> Result<Written> {
        let image = self
            .client
            .get_manifest(&self.repository, &record.digest)
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "the image {}@{} is not there to attach the record to",
                    self.location(),
                    record.digest
                )
            })?;
        let subject = Desc {
            media_type: image.media_type.clone(),
            digest: image.digest.to_string(),
            size: image.bytes.len() as u64,
            annotations: BTreeMap::new(),
            data: None,
        };
        // A record is signed before anything is pushed: a signing failure writes nothing.
        let signature = match &self.signer {
            Some(s) => Some(s.sign(record).await?),
            None => None,
        };
        let enc = oci::encode_record(record, subject, signature.as_ref())?;
        self.push_blob(EMPTY_DIGEST, bytes::Bytes::from_static(b"{}"))
            .await?;
        self.push_blob(&enc.blob_digest, enc.blob.clone()).await?;
        let referrer = Referrer {
            media_type: enc.manifest.media_type.clone(),
            digest: enc.manifest.digest.to_string(),
            size: enc.manifest.bytes.len() as u64,
            artifact_type: Some(RECORD_TYPE.into()),
            annotations: enc.annotations.clone(),
        };
        let path = referrers::push_referrer(
            &self.client,
            &self.repository,
            &record.digest,
            &enc.manifest,
            &referrer,
        )
        .await?;
        let time: String = record
            .ended_at
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        let nonce = record.run.rsplit('-').next().unwrap_or("0");
        let tag = make_tag(RECORD_PREFIX, &self.environment, &record.tag, &time, nonce)?;
        self.client
            .put_manifest(&self.repository, &tag, &enc.manifest)
            .await?;
        Ok(Written {
            digest: enc.manifest.digest.to_string(),
            tag,
            referrers: path,
        })
    }

    /// Reads the claims named in `catalog` (skipping ones that vanished meanwhile).
    pub async fn claims(&self, catalog: &Catalog) -> Result<Vec<ClaimInfo>> {
        let mut out = Vec::new();
        for n in &catalog.claims {
            let Some(m) = self.client.get_manifest(&self.repository, &n.tag).await? else {
                continue;
            };
            let a = oci::decode_manifest(&m.bytes, CLAIM_TYPE)
                .with_context(|| format!("claim {} in {}", n.tag, self.location()))?;
            let num = |k: &str| a.annotations.get(k).and_then(|v| v.parse::<u64>().ok());
            out.push(ClaimInfo {
                tag: n.clone(),
                claimed_ms: num(oci::key::CLAIMED).unwrap_or_default(),
                expires_ms: num(oci::key::EXPIRES).unwrap_or_default(),
                run_url: a.annotations.get(RUN_URL_KEY).cloned(),
                digest: m.digest.to_string(),
                run_id: a.annotations.get(RUN_ID_KEY).cloned(),
                attempt: num(RUN_ATTEMPT_KEY).and_then(|n| u32::try_from(n).ok()),
                held: a.annotations.get(HELD_KEY).is_some_and(|v| v == "true"),
            });
        }
        Ok(out)
    }

    /// Removes a claim (its manifest, and so its tag). A registry that refuses deletes
    /// (distribution without `delete.enabled`, a role without `ecr:BatchDeleteImage`) gets an
    /// `ferry-unclaim_…` tag beside the claim instead, which releases it just as well.
    pub async fn release(&self, claim: &ClaimInfo) -> Result<()> {
        // A renewal cut short may have moved the tag to a manifest this run never heard back
        // about: remove what the tag names now, and the one it knew.
        let mut claim = claim.clone();
        if let Ok(Some(now)) = self
            .client
            .get_manifest(&self.repository, &claim.tag.tag)
            .await
        {
            let now = now.digest.to_string();
            if now != claim.digest {
                let _ =
                    referrers::delete_manifest(&self.client, &self.repository, &claim.digest).await;
                claim.digest = now;
            }
        }
        let deleted =
            referrers::delete_manifest(&self.client, &self.repository, &claim.digest).await;
        if let Err(e) = deleted {
            let m = self
                .client
                .get_manifest(&self.repository, &claim.digest)
                .await?
                .ok_or_else(|| anyhow!("claim {} vanished", claim.tag.tag))?;
            let tag = format!("{UNCLAIM_PREFIX}{}", &claim.tag.tag[CLAIM_PREFIX.len()..]);
            anyhow::ensure!(tag.len() <= MAX_TAG, "cannot name the tag {tag:?}");
            self.client
                .put_manifest(&self.repository, &tag, &m)
                .await
                .with_context(|| {
                    format!(
                        "the registry refused to delete the claim ({e:#}), and marking it released"
                    )
                })?;
            tracing::info!(
                "{}: the registry refused to delete the claim {} ({e:#}); marked it released with {tag}",
                self.location(),
                claim.tag.tag
            );
        }
        Ok(())
    }
}

#[path = "store_claims.rs"]
mod claims;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferry_tags_parse_back() {
        let t = make_tag(
            RECORD_PREFIX,
            "prod_eu",
            "v1.2.0-rc.3",
            "20261123T101500Z",
            "0badf00d",
        )
        .unwrap();
        assert_eq!(
            parse_tag(&t, RECORD_PREFIX),
            Some(NamedTag {
                tag: t.clone(),
                environment: "prod_eu".into(),
                release: "v1.2.0-rc.3".into(),
                time: "20261123T101500Z".into(),
                nonce: "0badf00d".into(),
            })
        );
        assert_eq!(parse_tag(&t, CLAIM_PREFIX), None);
        assert_eq!(parse_tag("v1.2.0", RECORD_PREFIX), None);
        assert_eq!(parse_tag("ferry-record_x_y", RECORD_PREFIX), None);
        assert!(make_tag(CLAIM_PREFIX, &"e".repeat(120), "v1.0.0", "1", "2").is_err());
        assert!(make_tag(CLAIM_PREFIX, "a b", "v1.0.0", "1", "2").is_err());
    }
}
