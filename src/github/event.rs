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
    #[serde(default)]
    prerelease: bool,
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

/// Reads a GitHub event payload (`$GITHUB_EVENT_PATH`).
pub fn from_event_file(path: &Path) -> Result<Resolved> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::invalid(format!(
            "cannot read the event file {}: {e}",
            path.display()
        ))
        .hint("pass --tag TAG, or --event PATH pointing at a GitHub event payload")
    })?;
    from_event_json(&text, &path.display().to_string())
}

pub fn from_event_json(text: &str, origin: &str) -> Result<Resolved> {
    let event: Event = serde_json::from_str(text).map_err(|e| {
        Failure::invalid(format!(
            "the event file {origin} is not a GitHub event payload: {e}"
        ))
    })?;
    let repository = event.repository.and_then(|r| r.full_name);
    if let Some(release) = event.release {
        let action = event.action.unwrap_or_default();
        let tag = release.tag_name.filter(|t| !t.is_empty()).ok_or_else(|| {
            Failure::invalid(format!(
                "the release event in {origin} has no `release.tag_name`"
            ))
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
            release_prerelease: Some(release.prerelease),
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
