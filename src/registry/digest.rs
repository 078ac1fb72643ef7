//! Content digests (`algorithm:hex`), validated before they go near a URL, and the hasher
//! that checks bytes while they stream past.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A validated content digest: `sha256:` + 64 or `sha512:` + 128 lowercase hex digits.
/// Nothing else (no other algorithm, no `/`, `?`, `..`) can be built, so a `Digest` is safe
/// in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a digest (sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)")]
pub struct BadDigest(pub String);

impl Digest {
    /// Parses `algorithm:hex`.
    pub fn parse(s: &str) -> Result<Digest, BadDigest> {
        let bad = || {
            let shown: String = s.chars().take(80).collect();
            BadDigest(shown)
        };
        let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
        let len = match alg {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(bad()),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        Ok(Digest(s.to_string()))
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest of `bytes` with this digest's algorithm.
    pub fn of_same_kind(&self, bytes: &[u8]) -> Digest {
        let mut h = Hasher::for_digest(self);
        h.update(bytes);
        h.finish()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hashes bytes as they pass, with the algorithm of the digest they must match.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn for_digest(d: &Digest) -> Hasher {
        if d.0.starts_with("sha512:") {
            Hasher::Sha512(Sha512::new())
        } else {
            Hasher::Sha256(Sha256::new())
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest(format!("sha256:{}", hex::encode(h.finalize()))),
            Hasher::Sha512(h) => Digest(format!("sha512:{}", hex::encode(h.finalize()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_algorithm_colon_hex() {
        let ok = format!("sha256:{}", "a1".repeat(32));
        assert_eq!(Digest::parse(&ok).unwrap().as_str(), ok);
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            String::new(),
            "sha256:".into(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}/../../x", "a".repeat(64)),
            format!("sha256:{}?x=1", "a".repeat(57)),
            format!("md5:{}", "a".repeat(32)),
            format!("SHA256:{}", "a".repeat(64)),
            format!("sha256:{}", "é".repeat(32)),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad:?}");
        }
        let long = "x".repeat(10_000);
        assert!(Digest::parse(&long).unwrap_err().0.len() <= 80);
    }

    #[test]
    fn hashing() {
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let d512 = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        assert!(d512.of_same_kind(b"x").as_str().starts_with("sha512:"));
        let mut h = Hasher::for_digest(&Digest::sha256_of(b""));
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), Digest::sha256_of(b"abc"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_accepted_digests_are_url_safe(s in "\\PC{0,140}") {
            if let Ok(d) = Digest::parse(&s) {
                proptest::prop_assert!(d.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b':'));
            }
        }
    }
}
