//! What started this run: `--tag`, a GitHub `release` event, or a `workflow_dispatch` with a
//! `tag` input (the robust rollback path: re-run an old release by naming its tag).

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::tag::ReleaseTag;

/// A run that should deploy `tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trigger {
    pub tag: String,
    pub source: TriggerSource,
    /// The release's `prerelease` flag, when a release event said it.
    pub release_prerelease: Option<bool>,
    /// `owner/name` of the repository, when the event said it.
    pub repository: Option<String>,
    pub release_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerSource {
    Cli,
    Release,
    WorkflowDispatch,
}

/// The outcome of reading the trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Deploy(Trigger),
    /// A valid event that asks for nothing (e.g. a release was edited); exit 0 with this message.
    Nothing(String),
}

#[derive(Deserialize)]
struct Event {
    action: Option<String>,
    release: Option<Release>,
    inputs: Option<serde_json::Map<String, serde_json::Value>>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Release {
    tag_name: Option<String>,
    #[serde(default)]
    draft: bool,
    /// Required: a release event without it cannot be checked against its tag.
    prerelease: Option<bool>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
}

pub fn from_tag(tag: &str) -> Resolved {
    Resolved::Deploy(Trigger {
        tag: tag.to_string(),
        source: TriggerSource::Cli,
        release_prerelease: None,
        repository: None,
        release_url: None,
    })
}

/// Reads a GitHub event payload (`$GITHUB_EVENT_PATH`), and checks a release event against
/// `GITHUB_REF` when GitHub Actions says the run was started by a release.
pub fn from_event_file(path: &Path) -> Result<Resolved> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::invalid(format!(
            "cannot read the event file {}: {e}",
            path.display()
        ))
        .hint("pass --tag TAG, or --event PATH pointing at a GitHub event payload")
    })?;
    let resolved = from_event_json(&text, &path.display().to_string())?;
    if let Resolved::Deploy(t) = &resolved {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        check_github_ref(
            t,
            var("GITHUB_EVENT_NAME").as_deref(),
            var("GITHUB_REF").as_deref(),
        )?;
    }
    Ok(resolved)
}

/// A release run's `GITHUB_REF` must be `refs/tags/<tag_name>`: a payload whose tag differs
/// from the ref the workflow was started for is refused (exit 2). Only release events are
/// checked (`GITHUB_EVENT_NAME` = `release`, or unset while `GITHUB_REF` names a tag); a
/// `workflow_dispatch` runs on a branch and names its tag as an input.
pub fn check_github_ref(
    trigger: &Trigger,
    event_name: Option<&str>,
    github_ref: Option<&str>,
) -> Result<()> {
    if trigger.source != TriggerSource::Release {
        return Ok(());
    }
    let Some(github_ref) = github_ref else {
        return Ok(());
    };
    let applies = match event_name {
        Some(name) => name == "release",
        None => github_ref.starts_with("refs/tags/"),
    };
    if !applies || github_ref.strip_prefix("refs/tags/") == Some(trigger.tag.as_str()) {
        return Ok(());
    }
    Err(Failure::invalid(format!(
        "the release event names tag {:?} but GITHUB_REF is {github_ref:?}: they must name the same tag",
        trigger.tag
    ))
    .hint("run ferry on the release event's own ref (refs/tags/<tag_name>), or pass --tag explicitly")
    .into())
}

pub fn from_event_json(text: &str, origin: &str) -> Result<Resolved> {
    let event: Event = serde_json::from_str(text).map_err(|e| {
        Failure::invalid(format!(
            "the event file {origin} is not a GitHub event payload: {e}"
        ))
    })?;
    let repository = event.repository.and_then(|r| r.full_name);
    if let Some(release) = event.release {
        let tag = release.tag_name.filter(|t| !t.is_empty()).ok_or_else(|| {
            Failure::invalid(format!(
                "the release event in {origin} has no `release.tag_name`"
            ))
        })?;
        let action = event.action.filter(|a| !a.is_empty()).ok_or_else(|| {
            Failure::invalid(format!(
                "the release event for {tag} in {origin} has no `action`: ferry cannot tell whether it was published"
            ))
            .hint("pass the payload GitHub sends for `on: release: types: [published]`")
        })?;
        let prerelease = release.prerelease.ok_or_else(|| {
            Failure::invalid(format!(
                "the release event for {tag} in {origin} has no `release.prerelease`: ferry cannot check it against the tag"
            ))
            .hint("pass the payload GitHub sends for `on: release: types: [published]`")
        })?;
        if action != "published" {
            return Ok(Resolved::Nothing(format!(
                "release {tag}: event action is {action:?}; only \"published\" deploys, so nothing was done"
            )));
        }
        if release.draft {
            return Err(Failure::invalid(format!("release {tag} is a draft (`release.draft` is true in {origin}); drafts never deploy"))
                .hint("publish the release to deploy it")
                .into());
        }
        return Ok(Resolved::Deploy(Trigger {
            tag,
            source: TriggerSource::Release,
            release_prerelease: Some(prerelease),
            repository,
            release_url: release.html_url,
        }));
    }
    if let Some(inputs) = event.inputs {
        return match inputs.get("tag") {
            Some(serde_json::Value::String(tag)) if !tag.is_empty() => Ok(Resolved::Deploy(Trigger {
                tag: tag.clone(),
                source: TriggerSource::WorkflowDispatch,
                release_prerelease: None,
                repository,
                release_url: None,
            })),
            _ => Err(Failure::invalid(format!("the workflow_dispatch event in {origin} has no non-empty `tag` input"))
                .hint("declare `inputs: tag:` in the workflow and pass the release tag to deploy or roll back to")
                .into()),
        };
    }
    Err(Failure::invalid(format!(
        "the event in {origin} is neither a release event nor a workflow_dispatch with a `tag` input"
    ))
    .hint("trigger ferry with `on: release: types: [published]` or workflow_dispatch (see README), or pass --tag")
    .into())
}

/// The release's pre-release flag must agree with its tag.
pub fn check_prerelease_flag(trigger: &Trigger, tag: &ReleaseTag) -> Result<()> {
    match (trigger.release_prerelease, tag.is_prerelease()) {
        (Some(true), false) => Err(Failure::invalid(format!(
            "release {} is marked as a pre-release but its tag is a final release (production)",
            tag.tag
        ))
        .hint("untick \"Set as a pre-release\" on the release, or tag it vX.Y.Z-rc.N for staging")
        .into()),
        (Some(false), true) => Err(Failure::invalid(format!(
            "release {} is not marked as a pre-release but its tag is a pre-release (staging)",
            tag.tag
        ))
        .hint("tick \"Set as a pre-release\" on the release, or tag it vX.Y.Z for production")
        .into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, tag: &str, draft: bool, prerelease: bool) -> String {
        serde_json::json!({
            "action": action,
            "release": {"tag_name": tag, "draft": draft, "prerelease": prerelease, "html_url": "https://github.com/o/r/releases/tag/x"},
            "repository": {"full_name": "o/r"}
        })
        .to_string()
    }

    fn code(r: Result<Resolved>) -> u8 {
        crate::error::exit_code(&r.unwrap_err())
    }

    #[test]
    fn published_release_deploys() {
        let r = from_event_json(&event("published", "v1.2.3-rc.1", false, true), "e.json").unwrap();
        let Resolved::Deploy(t) = r else {
            panic!("{r:?}")
        };
        assert_eq!(t.tag, "v1.2.3-rc.1");
        assert_eq!(t.source, TriggerSource::Release);
        assert_eq!(t.release_prerelease, Some(true));
        assert_eq!(t.repository.as_deref(), Some("o/r"));
    }

    #[test]
    fn other_actions_do_nothing() {
        for action in [
            "created",
            "edited",
            "prereleased",
            "released",
            "deleted",
            "unpublished",
        ] {
            let r = from_event_json(&event(action, "v1.2.3", false, false), "e.json").unwrap();
            assert!(
                matches!(&r, Resolved::Nothing(m) if m.contains("nothing was done")),
                "{action}: {r:?}"
            );
        }
    }

    #[test]
    fn drafts_are_refused() {
        assert_eq!(
            code(from_event_json(
                &event("published", "v1.2.3", true, false),
                "e.json"
            )),
            2
        );
    }

    #[test]
    fn dispatch_with_tag() {
        let r = from_event_json(
            r#"{"inputs":{"tag":"v1.0.0"},"ref":"refs/heads/main"}"#,
            "e",
        )
        .unwrap();
        assert!(matches!(
            r,
            Resolved::Deploy(Trigger {
                source: TriggerSource::WorkflowDispatch,
                ..
            })
        ));
        assert_eq!(code(from_event_json(r#"{"inputs":{"other":"x"}}"#, "e")), 2);
    }

    #[test]
    fn garbage_is_invalid() {
        assert_eq!(code(from_event_json("not json", "e")), 2);
        assert_eq!(code(from_event_json(r#"{"push":{}}"#, "e")), 2);
        assert_eq!(
            code(from_event_json(
                r#"{"action":"published","release":{"draft":false}}"#,
                "e"
            )),
            2
        );
        assert_eq!(
            code(from_event_file(Path::new("/nonexistent/event.json"))),
            2
        );
    }

    #[test]
    fn release_events_need_action_and_prerelease() {
        let no_action = r#"{"release":{"tag_name":"v1.0.0","draft":false,"prerelease":false}}"#;
        let no_flag = r#"{"action":"published","release":{"tag_name":"v1.0.0","draft":false}}"#;
        let null_flag = r#"{"action":"published","release":{"tag_name":"v1.0.0","draft":false,"prerelease":null}}"#;
        for e in [no_action, no_flag, null_flag] {
            let err = from_event_json(e, "e.json").unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{e}");
        }
        let err = from_event_json(no_action, "e.json").unwrap_err();
        assert!(format!("{err}").contains("has no `action`"), "{err}");
        let err = from_event_json(no_flag, "e.json").unwrap_err();
        assert!(format!("{err}").contains("`release.prerelease`"), "{err}");
    }

    #[test]
    fn github_ref_must_name_the_release_tag() {
        let Resolved::Deploy(t) =
            from_event_json(&event("published", "v1.2.3", false, false), "e").unwrap()
        else {
            panic!()
        };
        let ok = |name: Option<&str>, r: Option<&str>| check_github_ref(&t, name, r).is_ok();
        assert!(ok(Some("release"), Some("refs/tags/v1.2.3")));
        assert!(ok(None, None));
        assert!(
            ok(Some("push"), Some("refs/heads/main")),
            "not a release run"
        );
        assert!(ok(None, Some("refs/heads/main")));
        for (name, r) in [
            (Some("release"), "refs/tags/v1.2.4"),
            (Some("release"), "refs/heads/main"),
            (Some("release"), "refs/tags/v1.2.3-rc.1"),
            (None, "refs/tags/v9.9.9"),
        ] {
            let e = check_github_ref(&t, name, Some(r)).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2, "{r}");
            assert!(format!("{e}").contains("must name the same tag"), "{e}");
        }
        let dispatch = Trigger {
            source: TriggerSource::WorkflowDispatch,
            ..t.clone()
        };
        assert!(check_github_ref(
            &dispatch,
            Some("workflow_dispatch"),
            Some("refs/heads/main")
        )
        .is_ok());
    }

    #[test]
    fn prerelease_flag_must_agree() {
        let words = vec!["rc".to_string()];
        let fin = crate::tag::parse("v1.0.0", &words).unwrap();
        let rc = crate::tag::parse("v1.0.0-rc.1", &words).unwrap();
        let mut t = match from_tag("x") {
            Resolved::Deploy(t) => t,
            _ => unreachable!(),
        };
        assert!(check_prerelease_flag(&t, &fin).is_ok());
        t.release_prerelease = Some(true);
        assert!(check_prerelease_flag(&t, &rc).is_ok());
        let e = check_prerelease_flag(&t, &fin).unwrap_err();
        assert!(format!("{e}").contains("marked as a pre-release"));
        t.release_prerelease = Some(false);
        assert!(check_prerelease_flag(&t, &rc).is_err());
    }
}
