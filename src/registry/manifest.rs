//! Manifests as typed values: what a manifest or index points at, parsed from the exact bytes
//! the registry stored (which are pushed on unchanged; parsing never re-serialises them).

use anyhow::{bail, Result};
use serde::Deserialize;

use super::digest::Digest;

/// The largest manifest ferry reads (the common registry limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Every manifest media type ferry understands, for `Accept`.
pub const MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A content descriptor inside a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// Where a foreign (non-distributable) layer lives, when the manifest says.
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// A Docker foreign layer or an OCI non-distributable layer: its bytes are meant to come
    /// from `urls`, and registries may not hold or accept them.
    pub fn is_foreign(&self) -> bool {
        self.media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            || self
                .media_type
                .starts_with("application/vnd.oci.image.layer.nondistributable.")
    }
}

/// What one manifest or index references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The manifest's own `mediaType` field, if any.
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    /// Child manifests of an index / manifest list.
    pub manifests: Vec<Descriptor>,
    /// An OCI 1.1 `subject`, when present (not copied: it is the image this artifact describes).
    pub subject: Option<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<u64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    subject: Option<Descriptor>,
    fs_layers: Option<serde_json::Value>,
}

/// Parses manifest bytes; rejects anything over [`MAX_MANIFEST_BYTES`], non-JSON, schema 1,
/// and descriptors whose digest is not `algorithm:hex`.
pub fn parse(bytes: &[u8]) -> Result<Parsed> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        bail!(
            "the manifest is {} bytes, over the {} MiB limit",
            bytes.len(),
            MAX_MANIFEST_BYTES >> 20
        );
    }
    let raw: Raw =
        serde_json::from_slice(bytes).map_err(|e| anyhow::anyhow!("not a manifest ({e})"))?;
    if raw.fs_layers.is_some() || raw.schema_version == Some(1) {
        bail!("it uses the Docker schema 1 format, which cannot be copied by digest; rebuild the image");
    }
    if raw.schema_version != Some(2) {
        bail!("not a schema version 2 manifest or index");
    }
    Ok(Parsed {
        media_type: raw.media_type,
        config: raw.config,
        layers: raw.layers,
        manifests: raw.manifests,
        subject: raw.subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_and_index() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"c","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":3,"urls":["https://x"]}}],"extra":1}}"#,
            d('a'),
            d('b')
        );
        let p = parse(m.as_bytes()).unwrap();
        assert_eq!(p.config.unwrap().size, 2);
        assert!(p.layers[0].is_foreign());
        assert_eq!(p.layers[0].urls, vec!["https://x".to_string()]);
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{}","size":9,"platform":{{"os":"linux"}}}}]}}"#,
            d('c')
        );
        assert_eq!(
            parse(i.as_bytes()).unwrap().manifests[0].digest,
            d('c').as_str()
        );
    }

    #[test]
    fn rejects() {
        let bad_digest = r#"{"schemaVersion":2,"layers":[{"digest":"sha256:../../x","size":1}]}"#;
        let no_size = format!(
            r#"{{"schemaVersion":2,"layers":[{{"digest":"{}"}}]}}"#,
            d('a')
        );
        let negative = format!(
            r#"{{"schemaVersion":2,"layers":[{{"digest":"{}","size":-1}}]}}"#,
            d('a')
        );
        for bad in [
            "not json",
            "[]",
            r#"{"schemaVersion":1,"fsLayers":[]}"#,
            r#"{"layers":[]}"#,
            bad_digest,
            &no_size,
            &negative,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(format!("{}", parse(&big).unwrap_err()).contains("4 MiB"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
        #[test]
        fn json_shaped_input_never_panics(s in r#"\{"schemaVersion":2,"(layers|manifests|config)":[\[\{"a-z0-9:,"\]\}]{0,80}"#) {
            let _ = parse(s.as_bytes());
        }
    }
}
