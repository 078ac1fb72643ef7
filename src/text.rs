//! Small text forms shared by every place that writes for people (the terminal, the step
//! summary, chat notifications): a leaf module, so none of them depends on another.

/// `sha256:4f0e5c1d…`: enough to tell digests apart at a glance.
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..8]),
        _ => digest.to_string(),
    }
}
