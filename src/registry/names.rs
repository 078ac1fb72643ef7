//! Repository names and references (tags or digests), checked before they go into a URL.

use anyhow::Result;

use super::digest::Digest;

/// Tags: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`; everything else that reaches a URL is a
/// [`Digest`].
pub(super) fn check_reference(reference: &str) -> Result<()> {
    if Digest::parse(reference).is_ok() {
        return Ok(());
    }
    let ok = (1..=128).contains(&reference.len())
        && reference
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    anyhow::ensure!(ok, "{reference:?} is neither a tag nor a digest");
    Ok(())
}

/// Repository names: lowercase path components of `[a-z0-9._-]`.
pub(super) fn check_repository(repository: &str) -> Result<()> {
    let ok = (1..=256).contains(&repository.len())
        && repository.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    anyhow::ensure!(ok, "{repository:?} is not a repository name");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_repositories() {
        for ok in [
            "v1.2.3",
            "latest",
            "_x",
            &format!("sha256:{}", "a".repeat(64)),
        ] {
            assert!(check_reference(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "a/b",
            "a?b",
            "sha256:../x",
            &"a".repeat(129),
        ] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
        assert!(check_repository("shop/api").is_ok());
        for bad in ["", "a//b", "../x", "a/./b", "A", "a?b"] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn references_never_panic(s in "\\PC{0,140}") {
            let _ = check_reference(&s);
            let _ = check_repository(&s);
        }
    }
}
