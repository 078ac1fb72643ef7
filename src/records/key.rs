//! The annotation keys of ferry's artifacts (records and claims).

/// Environment name.
pub const ENVIRONMENT: &str = "dev.ferry.environment";
/// Release tag.
pub const TAG: &str = "dev.ferry.tag";
/// Image digest (also the subject).
pub const DIGEST: &str = "dev.ferry.digest";
/// Result word.
pub const RESULT: &str = "dev.ferry.result";
/// Kind word.
pub const KIND: &str = "dev.ferry.kind";
/// Run id.
pub const RUN: &str = "dev.ferry.run";
/// Start (RFC 3339).
pub const STARTED: &str = "dev.ferry.started";
/// End (RFC 3339): the standard creation time.
pub const CREATED: &str = "org.opencontainers.image.created";
/// Claim expiry (Unix ms).
pub const EXPIRES: &str = "dev.ferry.expires-ms";
/// Claim start (Unix ms).
pub const CLAIMED: &str = "dev.ferry.claimed-ms";
/// The layer's file name (ORAS uses it when pulling).
pub const TITLE: &str = "org.opencontainers.image.title";
/// The release the run replaced (the record's `previous_release`), when known.
pub const REPLACED: &str = "dev.ferry.replaced";
/// For a promotion: the source record, `<environment>/<release>/<run>`.
pub const PROMOTED_FROM: &str = "dev.ferry.promoted-from";
/// `sha256:<hex>` of the record's body (its compact JSON): signed with the other annotations,
/// so that a signature covers the whole body, not only the fields repeated as annotations.
pub const BODY: &str = "dev.ferry.record-digest";
/// A release of several images: every image's `name@digest`, comma-separated, sorted by name.
pub const IMAGES: &str = "dev.ferry.images";
/// The signature of the signed annotations (`crate::records::sign`).
pub const SIGNATURE: &str = "dev.ferry.signature";
