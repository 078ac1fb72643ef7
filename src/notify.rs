//! Notifications: tells people what a run did, in Slack or any JSON webhook, without ever
//! standing in the way of the deploy.
//!
//! An environment file lists its targets:
//!
//! ```toml
//! [[notify]]
//! kind = "slack"                  # a Slack incoming webhook: {"text": …}
//! url_env = "SLACK_DEPLOY_WEBHOOK" # the URL comes from this environment variable, never the file
//!
//! [[notify]]
//! kind = "webhook"                # any endpoint taking ferry's JSON event (see `webhook_payload`)
//! url_env = "DEPLOY_EVENTS_URL"
//! on = ["failure", "rollback"]    # optional; default: every event
//! ```
//!
//! The API the run calls, once per event:
//!
//! - [`Event`] (built with [`Event::new`]) says what happened: [`EventKind::Start`] before anything changes,
//!   [`EventKind::Success`], [`EventKind::Failure`] (the environment is not known to be good)
//!   or [`EventKind::Rollback`] (the release failed and the environment is back on its previous
//!   release), with the release tag, version, environment, digest, a one-line verdict and the
//!   link to the GitHub Actions run ([`run_url_from_env`]).
//! - [`send`]`(&env.file.notify, &event).await` posts it to every target that wants that kind,
//!   concurrently, each with a short timeout ([`DEFAULT_TIMEOUT`]). It never fails and never
//!   panics: each target's [`Delivery`] says whether it worked, and a failure is logged as one
//!   warning line. So the caller can `let _ = notify::send(..).await;` at each step.
//!
//! Webhook URLs are secrets (a Slack URL is a credential): they are read from the environment
//! at send time, and never logged, printed or put in an error message.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long one notification may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One `[[notify]]` entry of an environment file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// `"slack"` or `"webhook"`.
    pub kind: NotifyKind,
    /// Name of the environment variable holding the URL (e.g. a repository secret exposed to
    /// the step with `env:`).
    pub url_env: String,
    /// Which events to send; default: all of them.
    pub on: Option<Vec<EventKind>>,
}

/// Where a notification goes, and so its payload's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// A Slack incoming webhook (`{"text": …}` in Slack's mrkdwn).
    Slack,
    /// Any HTTP endpoint taking ferry's JSON event ([`webhook_payload`]).
    Webhook,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The deploy starts (nothing changed yet).
    Start,
    /// The release is deployed and its smoke checks passed.
    Success,
    /// The deploy failed and the environment is not known to be good.
    Failure,
    /// The deploy failed and the environment was rolled back to its previous release.
    Rollback,
}

/// One notification's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The release tag, e.g. `v1.4.0`.
    pub release: String,
    /// Its version, e.g. `1.4.0`.
    pub version: String,
    /// The environment's name, e.g. `production`.
    pub environment: String,
    /// `sha256:…` of the image, when known.
    pub digest: Option<String>,
    /// One line saying how it ended (or what is about to happen, for `start`).
    pub verdict: String,
    /// Link to the run that did it ([`run_url_from_env`]).
    pub run_url: Option<String>,
}

impl Event {
    /// An event of this run: `run_url` comes from the GitHub Actions environment
    /// ([`run_url_from_env`]), `None` outside Actions.
    pub fn new(
        kind: EventKind,
        release: impl Into<String>,
        version: impl Into<String>,
        environment: impl Into<String>,
        digest: Option<String>,
        verdict: impl Into<String>,
    ) -> Event {
        Event {
            kind,
            release: release.into(),
            version: version.into(),
            environment: environment.into(),
            digest,
            verdict: verdict.into(),
            run_url: run_url_from_env(),
        }
    }
}

/// The link to the current GitHub Actions run (the one definition: `github::actions`).
pub fn run_url_from_env() -> Option<String> {
    crate::github::actions::run_url()
}

/// The JSON a `kind = "webhook"` target receives. Stable field names; the digest in full.
pub fn webhook_payload(event: &Event) -> Value {
    json!({
        "source": "ferry",
        "event": event.kind,
        "release": event.release,
        "version": event.version,
        "environment": event.environment,
        "digest": event.digest,
        "verdict": event.verdict,
        "run_url": event.run_url,
        "ferry_version": env!("CARGO_PKG_VERSION"),
    })
}

/// The JSON a `kind = "slack"` target receives: one mrkdwn line.
pub fn slack_payload(event: &Event) -> Value {
    let (icon, what) = match event.kind {
        EventKind::Start => (":rocket:", "deploying"),
        EventKind::Success => (":white_check_mark:", "deployed"),
        EventKind::Failure => (":rotating_light:", "FAILED"),
        EventKind::Rollback => (":leftwards_arrow_with_hook:", "rolled back"),
    };
    let mut text = format!(
        "{icon} *{}* {what} — *{}*",
        slack_escape(&event.release),
        slack_escape(&event.environment)
    );
    if let Some(d) = &event.digest {
        text.push_str(&format!(" `{}`", crate::render::short_digest(d)));
    }
    text.push_str(&format!("\n{}", slack_escape(&event.verdict)));
    if let Some(u) = &event.run_url {
        text.push_str(&format!("\n<{u}|the run>"));
    }
    json!({ "text": text })
}

/// Slack's three control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What happened to one target's notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `slack ($SLACK_DEPLOY_WEBHOOK)`: the kind and the variable, never the URL.
    pub target: String,
    /// Whether the receiver accepted it.
    pub ok: bool,
    /// `HTTP 200`, or why it was not delivered.
    pub detail: String,
}

impl NotifyTarget {
    /// Whether this target wants `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.on.as_ref().is_none_or(|on| on.contains(&kind))
    }

    fn label(&self) -> String {
        let kind = match self.kind {
            NotifyKind::Slack => "slack",
            NotifyKind::Webhook => "webhook",
        };
        format!("{kind} (${})", self.url_env)
    }
}

/// Field-level problems of `[[notify]]` entries, in the wording of `config::validate`.
pub fn validate(targets: &[NotifyTarget]) -> Vec<String> {
    let mut p = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let name_ok = !t.url_env.is_empty()
            && !t.url_env.starts_with(|c: char| c.is_ascii_digit())
            && t.url_env
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            p.push(format!(
                "field `notify[{i}].url_env`: {:?} is not an environment variable name (UPPER_CASE, digits, _); the URL itself never goes in the file",
                t.url_env
            ));
        }
        if t.on.as_ref().is_some_and(Vec::is_empty) {
            p.push(format!(
                "field `notify[{i}].on`: empty, so nothing would ever be sent; remove it to send every event"
            ));
        }
    }
    p
}

/// Sends `event` to every target that wants it, with [`DEFAULT_TIMEOUT`] each. Best effort:
/// never fails, never panics, never logs a URL.
pub async fn send(targets: &[NotifyTarget], event: &Event) -> Vec<Delivery> {
    send_with_timeout(targets, event, DEFAULT_TIMEOUT).await
}

/// [`send`] with another per-target timeout.
pub async fn send_with_timeout(
    targets: &[NotifyTarget],
    event: &Event,
    timeout: Duration,
) -> Vec<Delivery> {
    let wanted: Vec<&NotifyTarget> = targets.iter().filter(|t| t.wants(event.kind)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            let why = describe(e.without_url());
            return wanted
                .iter()
                .map(|t| failed(t, format!("no HTTP client: {why}")))
                .collect();
        }
    };
    let sends = wanted.iter().map(|t| deliver(&client, t, event, timeout));
    futures_util::future::join_all(sends).await
}

fn failed(t: &NotifyTarget, detail: String) -> Delivery {
    tracing::warn!(
        "notification to {} not delivered: {detail} (the deploy goes on)",
        t.label()
    );
    Delivery {
        target: t.label(),
        ok: false,
        detail,
    }
}

async fn deliver(
    client: &reqwest::Client,
    t: &NotifyTarget,
    event: &Event,
    timeout: Duration,
) -> Delivery {
    let url = match std::env::var(&t.url_env) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            return failed(
                t,
                format!(
                    "environment variable {} is not set (pass the secret to the step with `env:`)",
                    t.url_env
                ),
            )
        }
    };
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => {}
        _ => return failed(t, format!("${} does not hold an http(s) URL", t.url_env)),
    }
    let body = match t.kind {
        NotifyKind::Slack => slack_payload(event),
        NotifyKind::Webhook => webhook_payload(event),
    };
    match client.post(url.trim()).json(&body).send().await {
        Ok(resp) if resp.status().is_success() => {
            tracing::debug!("notified {} ({:?})", t.label(), event.kind);
            Delivery {
                target: t.label(),
                ok: true,
                detail: format!("HTTP {}", resp.status().as_u16()),
            }
        }
        Ok(resp) => failed(t, format!("answered HTTP {}", resp.status().as_u16())),
        Err(e) if e.is_timeout() => failed(t, format!("no answer within {timeout:?}")),
        // `without_url`: reqwest puts the URL (the secret) in its messages.
        Err(e) => failed(t, describe(e.without_url())),
    }
}

/// A reqwest error and its causes on one line.
fn describe(e: reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> Event {
        Event {
            kind,
            release: "v1.4.0".into(),
            version: "1.4.0".into(),
            environment: "production".into(),
            digest: Some(format!("sha256:feb32b9d{}", "0".repeat(56))),
            verdict: "deployed; smoke checks passed <1/1>".into(),
            run_url: Some("https://github.com/acme/shop/actions/runs/42".into()),
        }
    }

    #[test]
    fn webhook_payload_carries_full_values() {
        let v = webhook_payload(&event(EventKind::Rollback));
        assert_eq!(v["event"], "rollback");
        assert_eq!(v["release"], "v1.4.0");
        assert_eq!(v["environment"], "production");
        assert_eq!(v["digest"].as_str().unwrap().len(), 71);
        assert_eq!(v["run_url"], "https://github.com/acme/shop/actions/runs/42");
        assert_eq!(v["source"], "ferry");
    }

    #[test]
    fn slack_payload_is_one_short_escaped_line() {
        let v = slack_payload(&event(EventKind::Success));
        assert_eq!(
            v["text"],
            ":white_check_mark: *v1.4.0* deployed — *production* `sha256:feb32b9d…`\n\
             deployed; smoke checks passed &lt;1/1&gt;\n\
             <https://github.com/acme/shop/actions/runs/42|the run>"
        );
        let mut e = event(EventKind::Failure);
        e.digest = None;
        e.run_url = None;
        assert_eq!(
            slack_payload(&e)["text"],
            ":rotating_light: *v1.4.0* FAILED — *production*\ndeployed; smoke checks passed &lt;1/1&gt;"
        );
    }

    #[test]
    fn an_environment_file_takes_notify_targets_but_no_url() {
        let dir = tempfile::tempdir().unwrap();
        let base = "account_id = \"111111111111\"\nregion = \"eu-west-1\"\n[role]\narn = \"arn:aws:iam::111111111111:role/r\"\n[release]\nmatch = \"prerelease\"\n[image]\nrepository = \"app\"\n[[services]]\ncluster = \"c\"\nservice = \"s\"\ncontainer = \"k\"\n";
        let path = dir.path().join("staging.toml");
        std::fs::write(
            &path,
            format!("{base}[[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_URL\"\n"),
        )
        .unwrap();
        let envs = crate::config::load(dir.path()).unwrap();
        let env = envs.get("staging").unwrap();
        assert_eq!(
            env.file.notify,
            vec![NotifyTarget {
                kind: NotifyKind::Slack,
                url_env: "SLACK_URL".into(),
                on: None
            }]
        );
        std::fs::write(
            &path,
            format!("{base}[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.example/x\"\n"),
        )
        .unwrap();
        let err = format!("{:#}", crate::config::load(dir.path()).unwrap_err());
        assert!(err.contains("unknown field `url`"), "{err}");
    }

    #[test]
    fn targets_parse_from_toml_and_never_take_a_url() {
        #[derive(Deserialize)]
        struct F {
            notify: Vec<NotifyTarget>,
        }
        let f: F = toml::from_str(
            "[[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_URL\"\n\
             [[notify]]\nkind = \"webhook\"\nurl_env = \"HOOK\"\non = [\"failure\", \"rollback\"]\n",
        )
        .unwrap();
        assert_eq!(f.notify[0].kind, NotifyKind::Slack);
        assert!(f.notify[0].wants(EventKind::Start));
        assert!(!f.notify[1].wants(EventKind::Success));
        assert!(f.notify[1].wants(EventKind::Rollback));
        assert!(validate(&f.notify).is_empty());

        let err = toml::from_str::<F>(
            "[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/x\"\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("unknown field `url`"), "{err}");
        assert!(toml::from_str::<F>("[[notify]]\nkind = \"teams\"\nurl_env = \"X\"\n").is_err());

        let bad = vec![
            NotifyTarget {
                kind: NotifyKind::Webhook,
                url_env: "https://example.com/hook".into(),
                on: None,
            },
            NotifyTarget {
                kind: NotifyKind::Webhook,
                url_env: "OK".into(),
                on: Some(vec![]),
            },
        ];
        let p = validate(&bad);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("notify[0].url_env"), "{p:?}");
        assert!(p[1].contains("notify[1].on"), "{p:?}");
    }
}
