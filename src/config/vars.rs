//! `${NAME}` in environment files: replaced by the environment variable `NAME`, so that a
//! smoke URL (or a key) can follow where the service really is, e.g. the local world's ports.

use super::SmokeCheck;

/// Replaces each `${NAME}` with the environment variable `NAME` (so a smoke URL can follow
/// where the service really is, e.g. the local world's ports). `$` alone stays as it is.
pub fn expand_vars(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{s:?} opens `${{` without a closing `}}`"))?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "{s:?}: `${{{name}}}` is not a variable name (letters, digits, _)"
            ));
        }
        let value = lookup(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("{s:?} uses ${{{name}}}, which is not set in ferry's environment (export it, or write the URL out)")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands `${NAME}` in the URLs of `smoke` (the field names start with `field`).
pub(super) fn expand_smoke(
    smoke: &mut [SmokeCheck],
    field: &str,
    unexpanded: &mut Vec<(String, String)>,
) {
    for (i, c) in smoke.iter_mut().enumerate() {
        match expand_vars(&c.url, |k| std::env::var(k).ok()) {
            Ok(u) => c.url = u,
            Err(e) => unexpanded.push((format!("{field}[{i}].url"), e)),
        }
        if let Some(t) = &c.test_url {
            match expand_vars(t, |k| std::env::var(k).ok()) {
                Ok(u) => c.test_url = Some(u),
                Err(e) => unexpanded.push((format!("{field}[{i}].test_url"), e)),
            }
        }
    }
}
