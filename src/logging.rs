//! Logging to stderr, one line per event, with the level set by `FERRY_LOG` (default `info`),
//! and a filter that keeps secrets out at every level.
//!
//! The SDK and HTTP crates log whole requests and responses at `trace` (and some headers at
//! `debug`): `GetAuthorizationToken` and `AssumeRole` answers carry registry passwords and
//! session keys, and GitHub does not mask them. [`secret_filter`] drops every event of those
//! crates below `info`, whatever `FERRY_LOG` says; ferry's own `debug`/`trace` stay.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Crates whose detailed events may carry credentials on the wire.
pub const WIRE_TARGETS: &[&str] = &[
    "aws_", "hyper", "h2", "reqwest", "rustls", "tower", "http", "octocrab",
];

/// Whether an event of `target` at `level` may be printed: ferry's own always, the wire
/// crates at `info` and above only.
pub fn allowed(target: &str, level: &Level) -> bool {
    *level <= Level::INFO || !WIRE_TARGETS.iter().any(|t| target.starts_with(t))
}

/// The filter that keeps credential-bearing wire logs out, at any `FERRY_LOG` level.
pub fn secret_filter() -> FilterFn {
    FilterFn::new(|m: &tracing::Metadata<'_>| allowed(m.target(), m.level()))
}

/// The level filter from `FERRY_LOG` (default `info`), see [`filter_spec`].
pub fn env_filter() -> EnvFilter {
    let spec = filter_spec(std::env::var("FERRY_LOG").ok().as_deref());
    EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(filter_spec(None)))
}

/// The filter directives for a `FERRY_LOG` value: as given, plus `aws_=error` unless it sets
/// every target to `debug` or `trace` or names an `aws…` target itself. The SDK's own warnings (a
/// credentials provider that failed, with the failed response's debug dump) say what ferry
/// says in one line (`crate::aws::reach`); whoever debugs the SDK asks for `debug`.
pub fn filter_spec(ferry_log: Option<&str>) -> String {
    let given = ferry_log.map(str::trim).filter(|s| !s.is_empty());
    let spec = given.unwrap_or("info");
    let asks_for_sdk = spec.split(',').map(str::trim).any(|d| {
        let d = d.to_ascii_lowercase();
        d.starts_with("aws") || d == "debug" || d == "trace"
    });
    if asks_for_sdk {
        spec.to_string()
    } else {
        format!("{spec},aws_=error")
    }
}

/// Installs the stderr subscriber: no timestamps, no targets, colour only on a terminal
/// without `NO_COLOR`, [`env_filter`] and [`secret_filter`].
pub fn init() {
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .with_filter(secret_filter())
        .with_filter(env_filter());
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_crates_stay_at_info() {
        for t in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_sdk_ecr::operation",
            "aws_sigv4::http_request",
            "hyper_util::client",
            "reqwest::connect",
        ] {
            assert!(!allowed(t, &Level::TRACE), "{t}");
            assert!(!allowed(t, &Level::DEBUG), "{t}");
            assert!(allowed(t, &Level::INFO), "{t}");
            assert!(allowed(t, &Level::WARN), "{t}");
        }
        assert!(allowed("ferry::registry::client", &Level::TRACE));
        assert!(allowed("ferry", &Level::DEBUG));
    }

    #[test]
    fn sdk_warnings_only_when_debugging() {
        use tracing_subscriber::layer::SubscriberExt;
        for (ferry_log, sdk_warns) in [
            (None, false),
            (Some(""), false),
            (Some("info"), false),
            (Some("warn"), false),
            (Some("info,ferry=debug"), false),
            (Some("trace"), true),
            (Some("debug"), true),
            (Some("info,aws_config=warn"), true),
        ] {
            let filter = EnvFilter::new(filter_spec(ferry_log));
            let subscriber = tracing_subscriber::registry().with(filter);
            tracing::subscriber::with_default(subscriber, || {
                let sdk =
                    tracing::enabled!(target: "aws_config::meta::credentials::chain", Level::WARN);
                let smithy = tracing::enabled!(target: "aws_smithy_runtime::client", Level::WARN);
                let own = tracing::enabled!(target: "ferry::aws::reach", Level::WARN);
                assert_eq!(sdk, sdk_warns, "{ferry_log:?}");
                assert_eq!(smithy, sdk_warns, "{ferry_log:?}");
                assert!(own, "{ferry_log:?}");
            });
        }
    }
}
