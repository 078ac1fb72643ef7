//! Release tags: the strict grammar that decides which environment a release goes to.
//!
//! Accepted: exactly one lowercase `v` followed by a full semver 2.0 version without build
//! metadata. `vX.Y.Z` is a final (production) release; `vX.Y.Z-<word>.N` with N a plain number
//! is a pre-release, where `<word>` is `rc` unless an environment allows other words. Every
//! rejection says what is wrong and shows the accepted forms.

use std::fmt;

use serde::Serialize;

/// Longest tag we accept; git allows more, but nobody means a 200-character release tag.
const MAX_LEN: usize = 128;

/// Pre-release words accepted when no environment configures any.
pub const DEFAULT_PRERELEASE_WORDS: &[&str] = &["rc"];

/// A parsed, valid release tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseTag {
    /// The tag exactly as given, e.g. `v1.4.0-rc.2`.
    pub tag: String,
    /// The version without the `v`, e.g. `1.4.0-rc.2`.
    #[serde(serialize_with = "serialize_display")]
    pub version: semver::Version,
    pub channel: Channel,
}

/// Which kind of release a tag names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Channel {
    /// `vX.Y.Z`
    Final,
    /// `vX.Y.Z-<word>.N`
    Prerelease { word: String, number: u64 },
}

impl ReleaseTag {
    pub fn is_prerelease(&self) -> bool {
        matches!(self.channel, Channel::Prerelease { .. })
    }

    /// `X.Y.Z` of this tag, without the pre-release part.
    pub fn core(&self) -> semver::Version {
        semver::Version::new(self.version.major, self.version.minor, self.version.patch)
    }
}

impl fmt::Display for ReleaseTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag)
    }
}

fn serialize_display<S: serde::Serializer, T: fmt::Display>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Why a tag was refused. `Display` is the full, user-facing sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub tag: String,
    pub problem: String,
    pub accepted_words: Vec<String>,
}

impl TagError {
    /// The accepted forms, for the fix hint.
    pub fn accepted_forms(&self) -> String {
        let words = self.accepted_words.join("|");
        format!(
            "accepted forms: vX.Y.Z (production release) or vX.Y.Z-{words}.N (pre-release, N a plain number), e.g. v1.4.0 or v1.4.0-{first}.1",
            first = self.accepted_words.first().map_or("rc", String::as_str)
        )
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "release tag {:?} is not valid: {}",
            self.tag, self.problem
        )
    }
}

impl std::error::Error for TagError {}

/// Parses `tag`, accepting pre-releases only with one of `words` (lowercase ASCII words).
pub fn parse(tag: &str, words: &[String]) -> Result<ReleaseTag, TagError> {
    let fail = |problem: String| TagError {
        tag: tag.to_string(),
        problem,
        accepted_words: words.to_vec(),
    };
    if tag.is_empty() {
        return Err(fail("the tag is empty".into()));
    }
    if tag.len() > MAX_LEN {
        return Err(fail(format!(
            "it is {} bytes long; release tags are at most {MAX_LEN}",
            tag.len()
        )));
    }
    if tag.chars().any(char::is_whitespace) {
        return Err(fail(
            "it contains whitespace (check for a trailing newline or space)".into(),
        ));
    }
    if !tag.is_ascii() || tag.chars().any(|c| c.is_ascii_control()) {
        return Err(fail(
            "it contains characters outside printable ASCII".into(),
        ));
    }
    let rest = match tag.as_bytes()[0] {
        b'v' => &tag[1..],
        b'V' => {
            return Err(fail(format!(
                "it starts with an uppercase V; write v{}",
                &tag[1..]
            )))
        }
        b'0'..=b'9' => return Err(fail(format!("it lacks the v prefix; write v{tag}"))),
        _ => {
            return Err(fail(
                "it must start with a lowercase v followed by a version".into(),
            ))
        }
    };
    if rest.starts_with(['v', 'V']) {
        return Err(fail("it has more than one v prefix".into()));
    }
    if let Some((_, build)) = rest.split_once('+') {
        return Err(fail(format!(
            "it carries build metadata (+{build}), which semver ignores when ordering releases; remove it"
        )));
    }
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    check_core(core).map_err(&fail)?;
    let channel = match pre {
        None => Channel::Final,
        Some(pre) => check_prerelease(pre, words).map_err(&fail)?,
    };
    let version =
        semver::Version::parse(rest).map_err(|e| fail(format!("it is not semver 2.0: {e}")))?;
    Ok(ReleaseTag {
        tag: tag.to_string(),
        version,
        channel,
    })
}

/// `X.Y.Z`: three plain numbers without leading zeros. Gives sharper messages than semver's.
fn check_core(core: &str) -> Result<(), String> {
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() < 3 {
        return Err(format!(
            "{core:?} is a partial version; write all three numbers, e.g. {}",
            pad_version(&parts)
        ));
    }
    if parts.len() > 3 {
        return Err(format!(
            "{core:?} has {} numbers; a version has exactly three (X.Y.Z)",
            parts.len()
        ));
    }
    for (name, part) in ["major", "minor", "patch"].iter().zip(&parts) {
        if part.is_empty() {
            return Err(format!("the {name} number is empty"));
        }
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the {name} number {part:?} is not a plain number"));
        }
        if part.len() > 1 && part.starts_with('0') {
            return Err(format!(
                "the {name} number {part:?} has a leading zero; write {}",
                part.trim_start_matches('0').max("0")
            ));
        }
        if part.parse::<u64>().is_err() {
            return Err(format!("the {name} number {part:?} is too large"));
        }
    }
    Ok(())
}

fn pad_version(parts: &[&str]) -> String {
    let mut v: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    while v.len() < 3 {
        v.push("0");
    }
    format!("v{}", v.join("."))
}

/// `<word>.N`: one allowed lowercase word, a dot, one plain number.
fn check_prerelease(pre: &str, words: &[String]) -> Result<Channel, String> {
    let accepted = words.join(", ");
    let ids: Vec<&str> = pre.split('.').collect();
    let word = ids[0];
    let lower = word.to_ascii_lowercase();
    // Split a glued number off ("rc1") to suggest the dotted form.
    let letters: String = lower
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    let glued = &lower[letters.len()..];
    if ids.len() == 1
        && !letters.is_empty()
        && !glued.is_empty()
        && glued.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "pre-release {pre:?} must be dotted so it sorts numerically ({letters}.10 after {letters}.9); write {letters}.{}",
            glued.trim_start_matches('0').max("0")
        ));
    }
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "pre-release {pre:?} must be a word and a number, like rc.1"
        ));
    }
    if word != lower {
        return Err(format!(
            "pre-release word {word:?} must be lowercase; write {lower}"
        ));
    }
    if !words.iter().any(|w| w == word) {
        return Err(format!(
            "pre-release word {word:?} is not accepted here (accepted: {accepted}); an environment can allow it with `prerelease_words` in its [release] table"
        ));
    }
    match ids.len() {
        1 => Err(format!(
            "pre-release {pre:?} lacks its number; write {word}.1"
        )),
        2 => {
            let n = ids[1];
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "pre-release number {n:?} is not a plain number; write {word}.N, e.g. {word}.1"
                ));
            }
            if n.len() > 1 && n.starts_with('0') {
                return Err(format!(
                    "pre-release number {n:?} has a leading zero; write {word}.{}",
                    n.trim_start_matches('0').max("0")
                ));
            }
            let number = n
                .parse::<u64>()
                .map_err(|_| format!("pre-release number {n:?} is too large"))?;
            Ok(Channel::Prerelease {
                word: word.to_string(),
                number,
            })
        }
        _ => Err(format!(
            "pre-release {pre:?} has more than a word and a number; write {word}.N"
        )),
    }
}

/// The highest pre-release tag of `core` (X.Y.Z) among `tags`, by semver precedence
/// (`rc.10` > `rc.9`). Tags that do not parse are ignored.
pub fn highest_prerelease<'a>(
    tags: impl IntoIterator<Item = &'a str>,
    core: &semver::Version,
    words: &[String],
) -> Option<ReleaseTag> {
    tags.into_iter()
        .filter_map(|t| parse(t, words).ok())
        .filter(|t| t.is_prerelease() && t.core() == *core)
        .max_by(|a, b| a.version.cmp(&b.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc() -> Vec<String> {
        vec!["rc".to_string()]
    }

    /// (name, tag, expected: Ok(channel description) or Err(substring of the problem)).
    const CASES: &[(&str, &str, Result<&str, &str>)] = &[
        ("final", "v1.2.3", Ok("final")),
        ("final zeros", "v0.0.0", Ok("final")),
        ("final large", "v10.200.3000", Ok("final")),
        ("rc one", "v1.2.3-rc.1", Ok("rc.1")),
        ("rc zero", "v1.2.3-rc.0", Ok("rc.0")),
        ("rc ten", "v1.2.3-rc.10", Ok("rc.10")),
        ("rc big", "v2.0.0-rc.123456", Ok("rc.123456")),
        ("zero major rc", "v0.1.0-rc.2", Ok("rc.2")),
        ("empty", "", Err("empty")),
        ("no v", "1.2.3", Err("lacks the v prefix")),
        ("uppercase V", "V1.2.3", Err("uppercase V")),
        ("double v", "vv1.2.3", Err("more than one v")),
        ("word prefix", "release-1.2.3", Err("must start with a lowercase v")),
        ("leading space", " v1.2.3", Err("whitespace")),
        ("trailing newline", "v1.2.3\n", Err("whitespace")),
        ("inner space", "v1.2. 3", Err("whitespace")),
        ("tab", "v1.2.3\t", Err("whitespace")),
        ("major only", "v1", Err("partial version")),
        ("major minor", "v1.2", Err("partial version")),
        ("four parts", "v1.2.3.4", Err("exactly three")),
        ("leading zero major", "v01.2.3", Err("leading zero")),
        ("leading zero minor", "v1.02.3", Err("leading zero")),
        ("leading zero patch", "v1.2.03", Err("leading zero")),
        ("empty minor", "v1..3", Err("minor number is empty")),
        ("letter in patch", "v1.2.x", Err("not a plain number")),
        ("negative", "v-1.2.3", Err("partial version")),
        ("build metadata", "v1.2.3+build.5", Err("build metadata")),
        ("rc with build", "v1.2.3-rc.1+sha.abc", Err("build metadata")),
        ("glued rc", "v1.2.3-rc1", Err("must be dotted")),
        ("uppercase RC", "v1.2.3-RC.1", Err("must be lowercase")),
        ("beta not allowed", "v1.2.3-beta.1", Err("not accepted here")),
        ("alpha glued", "v1.2.3-alpha1", Err("must be dotted")),
        ("rc without number", "v1.2.3-rc", Err("lacks its number")),
        ("rc empty number", "v1.2.3-rc.", Err("not a plain number")),
        ("rc leading zero", "v1.2.3-rc.01", Err("leading zero")),
        ("rc word number", "v1.2.3-rc.one", Err("not a plain number")),
        ("rc three parts", "v1.2.3-rc.1.2", Err("more than a word and a number")),
        ("numeric prerelease", "v1.2.3-1", Err("word and a number")),
        ("empty prerelease", "v1.2.3-", Err("word and a number")),
        ("dash in word", "v1.2.3-pre-rc.1", Err("word and a number")),
        ("unicode", "v1.2.3-rc.١", Err("outside printable ASCII")),
        ("overflow", "v99999999999999999999.0.0", Err("too large")),
        ("rc overflow", "v1.0.0-rc.99999999999999999999", Err("too large")),
        ("too long", "v1.0.0-rc.1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111", Err("at most")),
        ("just v", "v", Err("partial version")),
        ("refs prefix", "refs/tags/v1.2.3", Err("must start with a lowercase v")),
    ];

    #[test]
    fn tag_table() {
        assert!(CASES.len() >= 30);
        for (name, tag, expected) in CASES {
            let got = parse(tag, &rc());
            match (expected, &got) {
                (Ok("final"), Ok(t)) => assert_eq!(t.channel, Channel::Final, "{name}"),
                (Ok(pre), Ok(t)) => {
                    let (w, n) = pre.split_once('.').unwrap();
                    assert_eq!(
                        t.channel,
                        Channel::Prerelease {
                            word: w.into(),
                            number: n.parse().unwrap()
                        },
                        "{name}"
                    );
                    assert_eq!(t.tag, *tag, "{name}");
                }
                (Err(needle), Err(e)) => {
                    assert!(
                        e.problem.contains(needle),
                        "{name}: {tag:?} gave {:?}, expected it to mention {needle:?}",
                        e.problem
                    )
                }
                _ => panic!("{name}: {tag:?} gave {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn configured_words_are_accepted() {
        let words = vec!["rc".to_string(), "beta".to_string()];
        let t = parse("v1.2.3-beta.4", &words).unwrap();
        assert_eq!(
            t.channel,
            Channel::Prerelease {
                word: "beta".into(),
                number: 4
            }
        );
        assert!(parse("v1.2.3-gamma.4", &words)
            .unwrap_err()
            .problem
            .contains("accepted: rc, beta"));
    }

    #[test]
    fn error_names_tag_and_forms() {
        let e = parse("V1.2.3", &rc()).unwrap_err();
        assert!(e.to_string().contains("\"V1.2.3\""));
        assert!(e.accepted_forms().contains("vX.Y.Z-rc.N"));
    }

    #[test]
    fn highest_rc_is_numeric() {
        let tags = [
            "v1.2.3-rc.9",
            "v1.2.3-rc.10",
            "v1.2.3-rc.2",
            "v1.2.4-rc.11",
            "v1.2.3",
            "junk",
            "v1.2.3-rc11",
        ];
        let core = semver::Version::new(1, 2, 3);
        assert_eq!(
            highest_prerelease(tags, &core, &rc()).unwrap().tag,
            "v1.2.3-rc.10"
        );
        assert!(highest_prerelease(["v1.2.3"], &core, &rc()).is_none());
    }

    #[test]
    fn json_shape() {
        let t = parse("v1.2.3-rc.4", &rc()).unwrap();
        let j = serde_json::to_value(&t).unwrap();
        assert_eq!(j["version"], "1.2.3-rc.4");
        assert_eq!(j["channel"]["kind"], "prerelease");
        assert_eq!(j["channel"]["number"], 4);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s, &rc());
        }

        #[test]
        fn never_panics_near_valid(s in "[vV]?[0-9]{1,3}(\\.[0-9]{0,3}){0,3}(-[a-zA-Z0-9.]{0,8})?(\\+[a-z0-9]{0,4})?") {
            let _ = parse(&s, &rc());
        }

        #[test]
        fn valid_tags_round_trip(maj in 0u64..1000, min in 0u64..1000, pat in 0u64..1000, n in proptest::option::of(0u64..100_000)) {
            let tag = match n {
                Some(n) => format!("v{maj}.{min}.{pat}-rc.{n}"),
                None => format!("v{maj}.{min}.{pat}"),
            };
            let t = parse(&tag, &rc()).unwrap();
            proptest::prop_assert_eq!(format!("v{}", t.version), tag);
            proptest::prop_assert_eq!(t.is_prerelease(), n.is_some());
        }
    }
}
