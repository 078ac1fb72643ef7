//! Every sentence a person reads: the plan, the deploy report and its verdict, status and
//! validation tables, copy results, and the Markdown of the GitHub step summary. One place, so
//! the wording stays consistent and the snapshot tests catch every change.
//!
//! The files: `plan` (the plan and each service's strategy), `report` (the deploy report as
//! text, its verdict and the words for a service's state), `summary` (the Markdown of the step
//! summary), `timeline` (its Mermaid "Rollout timeline"), `interrupt` (what an interrupted
//! deploy leaves behind), `memory` (kinds of run, records, status); the validation and copy
//! texts are here.

mod interrupt;
mod memory;
mod plan;
mod report;
mod summary;
mod timeline;

pub use interrupt::interruption;
pub use memory::{headline, status_text};
pub use plan::{plan_markdown, plan_text};
pub use report::{
    failing_already_verdict, failure_reasons, failure_verdict, report_text, service_detail,
    state_words, success_verdict, targets_line,
};
pub use summary::report_markdown;

use std::fmt::Write as _;

use crate::registry::copy::CopyOutcome;
use crate::report::{Check, ServiceStatus};

pub use crate::text::short_digest;

/// Every `sha256:<64 hex>` in `text` in its short form, except on the line that states
/// `keep` on its own (`digest   sha256:…`), where a person may need to copy it whole.
pub fn shorten_digests(text: &str, keep: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let is_digest_line = keep.is_some_and(|k| {
            let t = line.trim();
            t.strip_prefix("digest")
                .is_some_and(|rest| rest.trim() == k)
        });
        if is_digest_line {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("sha256:") {
            let hex = &rest[i + 7..];
            let n = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
            if n == 64 {
                out.push_str(&rest[..i]);
                out.push_str(&short_digest(&rest[i..i + 7 + 64]));
                rest = &rest[i + 7 + 64..];
            } else {
                out.push_str(&rest[..i + 7]);
                rest = &rest[i + 7..];
            }
        }
        out.push_str(rest);
    }
    out
}

/// The live strategy and, mid-release, where a blue/green release stands (after a status line).
fn strategy_and_flight(s: &mut String, r: &ServiceStatus) {
    if let Some(strategy) = &r.strategy {
        let _ = write!(s, ", strategy {strategy}");
    }
    if let Some(f) = &r.in_flight {
        let _ = write!(s, ", release in flight: {} {}", f.deployment, f.status);
        if let Some(stage) = &f.stage {
            let _ = write!(s, " at {stage}");
        }
        if let Some(w) = f.replacement_weight {
            let _ = write!(
                s,
                ", production traffic {w:.0}% on the replacement, {:.0}% on the original",
                100.0 - w
            );
        }
    }
}

/// `ferry validate`, one line per check.
pub fn checks_text(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let _ = writeln!(
            s,
            "{} {:<12} {:<28} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.environment,
            c.check,
            c.detail
        );
    }
    s
}

/// `ferry copy`'s result.
pub fn copy_text(source: &str, destination: &str, out: &CopyOutcome) -> String {
    if out.already_done {
        format!(
            "{destination} already points at {}: nothing to copy ({} requests)\n",
            out.digest, out.requests
        )
    } else {
        format!(
            "copied {source} → {destination}: {} ({}), {} manifest(s), blobs {} copied / {} mounted / {} already there, {:.1} MiB in {:.2}s, {} requests; verified\n",
            out.digest,
            out.media_type,
            out.manifests,
            out.blobs_copied,
            out.blobs_mounted,
            out.blobs_skipped,
            out.bytes_copied as f64 / 1048576.0,
            out.seconds,
            out.requests
        )
    }
}

#[cfg(test)]
#[path = "../render_tests.rs"]
mod tests;
