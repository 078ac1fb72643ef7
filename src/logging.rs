//! Progress on stderr: one line per event (readable in CI logs), colour only on a terminal
//! and never with `NO_COLOR`, level from `FERRY_LOG` (default `info`, the AWS SDK quiet).

use std::io::IsTerminal;

/// The default filter: ferry's progress, the SDK's warnings only.
pub const DEFAULT_FILTER: &str = "info,aws_config=warn,aws_smithy_runtime=warn";

/// Installs the global subscriber. Call once, first thing.
pub fn init() {
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .init();
}
