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

/// The level filter from `FERRY_LOG` (default `info`, SDK chatter at `warn`).
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"))
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
}
