//! A record as an OCI 1.1 artifact (image spec 1.1 "Guidelines for Artifact Usage"): an image
//! manifest with `artifactType` [`RECORD_TYPE`], the empty config, one layer holding the
//! record's JSON, `subject` = the image it describes, and annotations that summarise it (so a
//! referrers listing, or one manifest GET, says what happened without fetching the blob).
//!
//! Claims (see `store`) use the same shape with [`CLAIM_TYPE`] and no subject.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{unix_of, Record, RecordResult, RunKind, Summary};
use crate::registry::client::Manifest;
use crate::registry::digest::Digest;
use crate::registry::referrers::MANIFEST_MEDIA_TYPE;

/// `artifactType` (and layer media type) of a release record.
pub const RECORD_TYPE: &str = "application/vnd.ferry.release-record.v1+json";
/// `artifactType` (and layer media type) of a run's claim on an environment.
pub const CLAIM_TYPE: &str = "application/vnd.ferry.claim.v1+json";
/// The OCI empty descriptor's media type.
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// sha256 of `{}`.
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// The largest record ferry writes or reads (a record with its promotion record is a few KiB).
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// The largest record manifest ferry reads.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

pub use super::key;

/// A content descriptor with the optional fields OCI 1.1 uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desc {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Inline data (the empty config carries `e30=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// An OCI image manifest used as an artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`].
    pub media_type: String,
    /// [`RECORD_TYPE`] or [`CLAIM_TYPE`].
    pub artifact_type: String,
    /// The empty config.
    pub config: Desc,
    /// One layer: the JSON body.
    pub layers: Vec<Desc>,
    /// The image described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Desc>,
    /// The summary (a key given twice is refused: readers could disagree on its value).
    #[serde(default, deserialize_with = "unique_keys")]
    pub annotations: BTreeMap<String, String>,
}

/// A JSON object of strings whose keys are all different.
fn unique_keys<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = m.next_entry::<String, String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!(
                        "annotation {k} is given twice"
                    )));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// An encoded artifact: the manifest (exact bytes), the blob it points to.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The manifest.
    pub manifest: Manifest,
    /// The layer's bytes.
    pub blob: bytes::Bytes,
    /// The layer's digest.
    pub blob_digest: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The annotations summarising `r`.
pub fn record_annotations(r: &Record) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (key::ENVIRONMENT.into(), r.environment.clone()),
        (key::TAG.into(), r.tag.clone()),
        (key::DIGEST.into(), r.digest.clone()),
        (key::RESULT.into(), r.result.as_str().into()),
        (key::KIND.into(), r.kind.as_str().into()),
        (key::RUN.into(), r.run.clone()),
        (key::STARTED.into(), r.started_at.clone()),
        (key::CREATED.into(), r.ended_at.clone()),
    ]);
    if let Some(p) = &r.previous_release {
        a.insert(key::REPLACED.into(), p.clone());
    }
    if let Some(p) = &r.promoted_from {
        a.insert(
            key::PROMOTED_FROM.into(),
            format!("{}/{}/{}", p.environment, p.tag, p.run),
        );
    }
    if !r.images.is_empty() {
        a.insert(key::IMAGES.into(), super::images_text(&r.images));
    }
    if let Ok(body) = serde_json::to_vec(r) {
        a.insert(key::BODY.into(), Digest::sha256_of(&body).to_string());
    }
    a
}

/// The bytes a signature of `record` covers (`crate::records::sign`).
pub fn signed_bytes(record: &Record) -> Result<Vec<u8>> {
    super::sign::canonical_of(&record_annotations(record))
}

/// Encodes `record` as an artifact whose subject is `subject` (the image's manifest), signed
/// with `signature` (over [`signed_bytes`]) when there is one.
pub fn encode_record(
    record: &Record,
    subject: Desc,
    signature: Option<&super::sign::Signature>,
) -> Result<Encoded> {
    anyhow::ensure!(
        subject.digest == record.digest,
        "a record of {} cannot describe {}",
        record.digest,
        subject.digest
    );
    let blob = bytes::Bytes::from(serde_json::to_vec_pretty(record)?);
    anyhow::ensure!(
        blob.len() <= MAX_RECORD_BYTES,
        "the record is {} bytes, more than {MAX_RECORD_BYTES}",
        blob.len()
    );
    let mut annotations = record_annotations(record);
    if let Some(sig) = signature {
        annotations.insert(key::SIGNATURE.into(), sig.to_text());
    }
    encode(RECORD_TYPE, blob, Some(subject), annotations, "record.json")
}

/// Encodes an artifact of `artifact_type` with one JSON layer.
pub fn encode(
    artifact_type: &str,
    blob: bytes::Bytes,
    subject: Option<Desc>,
    annotations: BTreeMap<String, String>,
    title: &str,
) -> Result<Encoded> {
    let blob_digest = Digest::sha256_of(&blob);
    let m = ArtifactManifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE.into(),
        artifact_type: artifact_type.into(),
        config: Desc {
            media_type: EMPTY_TYPE.into(),
            digest: EMPTY_DIGEST.into(),
            size: 2,
            annotations: BTreeMap::new(),
            data: Some("e30=".into()),
        },
        layers: vec![Desc {
            media_type: artifact_type.into(),
            digest: blob_digest.to_string(),
            size: blob.len() as u64,
            annotations: BTreeMap::from([(key::TITLE.into(), title.into())]),
            data: None,
        }],
        subject,
        annotations: annotations.clone(),
    };
    let bytes = bytes::Bytes::from(serde_json::to_vec(&m)?);
    Ok(Encoded {
        manifest: Manifest {
            digest: Digest::sha256_of(&bytes),
            bytes,
            media_type: MANIFEST_MEDIA_TYPE.into(),
        },
        blob,
        blob_digest: blob_digest.to_string(),
        annotations,
    })
}

/// Parses and checks an artifact manifest of `artifact_type`.
pub fn decode_manifest(bytes: &[u8], artifact_type: &str) -> Result<ArtifactManifest> {
    anyhow::ensure!(
        bytes.len() <= MAX_MANIFEST_BYTES,
        "a manifest of {} bytes is not a ferry artifact (at most {MAX_MANIFEST_BYTES})",
        bytes.len()
    );
    let m: ArtifactManifest =
        serde_json::from_slice(bytes).context("not an OCI artifact manifest")?;
    if m.artifact_type != artifact_type {
        bail!(
            "artifact type {:?}, expected {artifact_type:?}",
            m.artifact_type
        );
    }
    anyhow::ensure!(
        m.layers.len() == 1,
        "expected one layer, found {}",
        m.layers.len()
    );
    anyhow::ensure!(
        m.layers[0].size as usize <= MAX_RECORD_BYTES,
        "the record layer is {} bytes, more than {MAX_RECORD_BYTES}",
        m.layers[0].size
    );
    Ok(m)
}

/// The summary of a record from its annotations (a referrers descriptor or its manifest), its
/// signature checked against `keys` (none: not checked).
pub fn summary_of(
    annotations: &BTreeMap<String, String>,
    record: &str,
    keys: &[super::sign::PublicKey],
) -> Result<Summary> {
    let get = |k: &str| {
        annotations
            .get(k)
            .cloned()
            .ok_or_else(|| anyhow!("record {record}: annotation {k} is missing"))
    };
    let time = |k: &str| -> Result<u64> {
        let v = get(k)?;
        unix_of(&v).ok_or_else(|| anyhow!("record {record}: {k} {v:?} is not an RFC 3339 time"))
    };
    let result = get(key::RESULT)?;
    let kind = get(key::KIND)?;
    Ok(Summary {
        environment: get(key::ENVIRONMENT)?,
        tag: get(key::TAG)?,
        digest: get(key::DIGEST)?,
        result: RecordResult::parse(&result)
            .ok_or_else(|| anyhow!("record {record}: result {result:?} is unknown"))?,
        kind: RunKind::parse(&kind)
            .ok_or_else(|| anyhow!("record {record}: kind {kind:?} is unknown"))?,
        run: get(key::RUN)?,
        started_at: time(key::STARTED)?,
        ended_at: time(key::CREATED)?,
        record: record.to_string(),
        trust: super::sign::verify(annotations, keys),
        images: match annotations.get(key::IMAGES) {
            None => BTreeMap::new(),
            Some(t) => super::parse_images(t).ok_or_else(|| {
                anyhow!(
                    "record {record}: {} {t:?} is not name@digest,…",
                    key::IMAGES
                )
            })?,
        },
    })
}

/// Parses a record body and checks it agrees with its manifest.
pub fn decode_record(blob: &[u8], manifest: &ArtifactManifest) -> Result<Record> {
    anyhow::ensure!(
        blob.len() <= MAX_RECORD_BYTES,
        "a record of {} bytes (at most {MAX_RECORD_BYTES})",
        blob.len()
    );
    let layer = &manifest.layers[0];
    anyhow::ensure!(
        Digest::sha256_of(blob).as_str() == layer.digest,
        "the record's bytes do not match its digest {}",
        layer.digest
    );
    let r: Record = serde_json::from_slice(blob).context("not a ferry release record")?;
    anyhow::ensure!(
        r.schema == super::SCHEMA,
        "record schema {:?}, expected {:?}",
        r.schema,
        super::SCHEMA
    );
    if let Some(s) = &manifest.subject {
        anyhow::ensure!(
            s.digest == r.digest,
            "the record describes {} but its subject is {}",
            r.digest,
            s.digest
        );
    }
    // What the signature covers is the annotations: the body must say the same.
    if manifest.annotations.contains_key(key::SIGNATURE) {
        let body = record_annotations(&r);
        for k in super::sign::SIGNED {
            anyhow::ensure!(
                body.get(k) == manifest.annotations.get(k),
                "the record's body disagrees with its signed annotation {k}"
            );
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{RecordResult, RunKind, SCHEMA};

    /// The descriptor of the image manifest `digest` (a record's subject).
    fn image(digest: &str) -> Desc {
        Desc {
            media_type: MANIFEST_MEDIA_TYPE.into(),
            digest: digest.into(),
            size: 10,
            annotations: BTreeMap::new(),
            data: None,
        }
    }

    pub(crate) fn record(tag: &str, digest: &str) -> Record {
        Record {
            images: Default::default(),
            schema: SCHEMA.into(),
            run: "1-abc".into(),
            environment: "staging".into(),
            tag: tag.into(),
            version: tag.trim_start_matches('v').into(),
            digest: digest.into(),
            repository: "r/app".into(),
            kind: RunKind::Deploy,
            result: RecordResult::Succeeded,
            previous_release: None,
            services: vec![],
            smoke: vec![],
            started_at: "2026-11-23T10:00:00Z".into(),
            ended_at: "2026-11-23T10:05:00Z".into(),
            trigger: "cli".into(),
            run_url: None,
            ferry_version: "0.1.0".into(),
            promoted_from: None,
            built_as: None,
        }
    }

    #[test]
    fn a_record_of_several_images_names_the_set_in_a_signed_annotation() {
        let (a, b) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
        );
        let mut r = record("v1.0.0-rc.1", &a);
        r.images = [
            ("web".to_string(), a.clone()),
            ("worker".to_string(), b.clone()),
        ]
        .into();
        let e = encode_record(&r, image(&a), None).unwrap();
        let m = decode_manifest(&e.manifest.bytes, RECORD_TYPE).unwrap();
        assert_eq!(
            m.annotations.get(key::IMAGES).map(String::as_str),
            Some(format!("web@{a},worker@{b}").as_str())
        );
        assert!(crate::records::sign::SIGNED.contains(&key::IMAGES));
        let s = summary_of(&m.annotations, e.manifest.digest.as_str(), &[]).unwrap();
        assert_eq!(s.images, r.images);
        assert_eq!(decode_record(&e.blob, &m).unwrap(), r);
        // An annotation that is not name@digest,… makes the record unreadable, not partial.
        for bad in ["", "web", "web@sha256:x", &format!("web@{a},web@{b}")] {
            let mut ann = m.annotations.clone();
            ann.insert(key::IMAGES.into(), bad.to_string());
            assert!(summary_of(&ann, "r", &[]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_record_round_trips_through_its_artifact() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = record("v1.0.0-rc.1", &d);
        let subject = image(&d);
        let e = encode_record(&r, subject.clone(), None).unwrap();
        let m = decode_manifest(&e.manifest.bytes, RECORD_TYPE).unwrap();
        assert_eq!(
            m.subject.as_ref().map(|s| s.digest.as_str()),
            Some(d.as_str())
        );
        assert_eq!(decode_record(&e.blob, &m).unwrap(), r);
        let s = summary_of(&m.annotations, e.manifest.digest.as_str(), &[]).unwrap();
        assert_eq!(
            (s.tag.as_str(), s.result),
            ("v1.0.0-rc.1", RecordResult::Succeeded)
        );
        assert_eq!(s.ended_at - s.started_at, 300);
        // A record never describes other bytes than its subject.
        let other = Desc {
            digest: format!("sha256:{}", "b".repeat(64)),
            ..subject
        };
        assert!(encode_record(&r, other, None).is_err());
        assert!(decode_manifest(&e.manifest.bytes, CLAIM_TYPE).is_err());
        assert!(decode_record(b"{}", &m).is_err());
    }

    #[test]
    fn a_signed_record_agrees_with_its_annotations_and_no_annotation_is_given_twice() {
        let d = format!("sha256:{}", "a".repeat(64));
        let mut r = record("v1.0.0-rc.1", &d);
        r.previous_release = Some("v0.9.0-rc.1".into());
        let subject = image(&d);
        let sig = crate::records::sign::Signature {
            key: "0123456789abcdef".into(),
            der: vec![0x30, 1, 2],
        };
        let e = encode_record(&r, subject, Some(&sig)).unwrap();
        let m = decode_manifest(&e.manifest.bytes, RECORD_TYPE).unwrap();
        assert_eq!(m.annotations[key::REPLACED], "v0.9.0-rc.1");
        assert_eq!(m.annotations[key::SIGNATURE], sig.to_text());
        assert_eq!(decode_record(&e.blob, &m).unwrap(), r);
        // The body says another result than the signed annotations: refused.
        let mut flipped = m.clone();
        flipped
            .annotations
            .insert(key::RESULT.into(), "rolled-back".into());
        let e2 = decode_record(&e.blob, &flipped).unwrap_err().to_string();
        assert!(
            e2.contains("disagrees with its signed annotation dev.ferry.result"),
            "{e2}"
        );
        // A body changed in a field no other annotation repeats (the blob and its layer
        // digest rewritten, the signed annotations copied): refused by the body's digest.
        let mut tampered = r.clone();
        tampered.built_as = Some("v1.0.0-rc.9".into());
        let blob = serde_json::to_vec_pretty(&tampered).unwrap();
        let mut rewritten = m.clone();
        rewritten.layers[0].digest = Digest::sha256_of(&blob).to_string();
        let e4 = decode_record(&blob, &rewritten).unwrap_err().to_string();
        assert!(
            e4.contains("disagrees with its signed annotation dev.ferry.record-digest"),
            "{e4}"
        );
        // A manifest naming an annotation twice is not read at all.
        let text = String::from_utf8(e.manifest.bytes.to_vec()).unwrap();
        let twice = text.replacen(
            "\"dev.ferry.result\":\"succeeded\"",
            "\"dev.ferry.result\":\"succeeded\",\"dev.ferry.result\":\"rolled-back\"",
            1,
        );
        assert_ne!(twice, text);
        let e3 = format!(
            "{:#}",
            decode_manifest(twice.as_bytes(), RECORD_TYPE).unwrap_err()
        );
        assert!(e3.contains("given twice"), "{e3}");
    }
}
