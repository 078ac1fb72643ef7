//! The `Link` header of paginated registry answers (`</v2/…/tags/list?last=x&n=100>;
//! rel="next"`), parsed without trusting its shape (RFC 8288).

/// Longest `Link` header value considered; anything longer is ignored.
const MAX_LEN: usize = 8 * 1024;

/// The target of the first `rel="next"` link, as written (resolve it against the request
/// URL). `None` for no such link or a value that is not a well-formed link list.
pub fn next(header: &str) -> Option<String> {
    if header.len() > MAX_LEN {
        return None;
    }
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        let after_lt = rest.strip_prefix('<')?;
        let end = after_lt.find('>')?;
        let target = &after_lt[..end];
        rest = &after_lt[end + 1..];
        // Parameters up to the next comma outside quotes.
        let mut is_next = false;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let Some(p) = rest.strip_prefix(';') else {
                break;
            };
            rest = p.trim_start_matches([' ', '\t']);
            let name_end = rest.find(['=', ';', ',']).unwrap_or(rest.len());
            let name = rest[..name_end].trim();
            rest = &rest[name_end..];
            let mut value = "";
            if let Some(v) = rest.strip_prefix('=') {
                let v = v.trim_start_matches([' ', '\t']);
                if let Some(q) = v.strip_prefix('"') {
                    let close = q.find('"')?;
                    value = &q[..close];
                    rest = &q[close + 1..];
                } else {
                    let e = v.find([';', ',']).unwrap_or(v.len());
                    value = v[..e].trim();
                    rest = &v[e..];
                }
            }
            if name.eq_ignore_ascii_case("rel")
                && value
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
            {
                is_next = true;
            }
        }
        if is_next {
            return (!target.is_empty()).then(|| target.to_string());
        }
        rest = rest.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            next(r#"</v2/a/tags/list?last=x&n=100>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=100")
        );
        assert_eq!(
            next(r#"<https://r.example/v2/a/tags/list?last=b>;rel=next"#).as_deref(),
            Some("https://r.example/v2/a/tags/list?last=b")
        );
        assert_eq!(
            next(r#"</prev>; rel="prev", </n>; title="a, b"; rel="last next""#).as_deref(),
            Some("/n")
        );
        for bad in [
            "",
            r#"</x>; rel="prev""#,
            r#">x<; rel="next""#,
            r#"/x; rel="next""#,
            r#"<; rel="next""#,
            r#"</x>; rel="next"#,
            r#"<>; rel="next""#,
            r#"</x> junk; rel="next""#,
        ] {
            assert_eq!(next(bad), None, "{bad:?}");
        }
        assert_eq!(next(&format!("<{}>; rel=next", "a".repeat(MAX_LEN))), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[<>;=, \"a-z/?&]{0,60}") {
            let _ = next(&s);
        }
        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,80}") {
            let _ = next(&s);
        }
    }
}
