//! GitHub Actions' side channels: step outputs (`$GITHUB_OUTPUT`), the step summary
//! (`$GITHUB_STEP_SUMMARY`, kept under its 1 MiB limit) and annotations (workflow commands on
//! stderr, escaped). Outside Actions every function here does nothing.

use std::io::Write as _;

use anyhow::{Context, Result};

/// In GitHub Actions: appends `key=value` lines to `$GITHUB_OUTPUT`.
pub fn github_outputs(pairs: &[(&str, &str)]) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("opening $GITHUB_OUTPUT ({path})"))?;
    for (k, v) in pairs {
        // Values never contain newlines here; refuse rather than corrupt the file.
        anyhow::ensure!(!v.contains('\n'), "output {k} contains a newline");
        writeln!(f, "{k}={v}")?;
    }
    Ok(())
}

/// In GitHub Actions: appends Markdown to `$GITHUB_STEP_SUMMARY` (kept under its 1 MiB limit).
pub fn github_summary(markdown: &str) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    const LIMIT: usize = 1024 * 1024 - 1024;
    let mut text = markdown.to_string();
    if text.len() > LIMIT {
        let mut cut = LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n\n… (truncated)\n");
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("opening $GITHUB_STEP_SUMMARY ({path})"))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The URL of this GitHub Actions run (and attempt), from the runner's variables.
pub fn run_url() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let server = var("GITHUB_SERVER_URL")?;
    let repo = var("GITHUB_REPOSITORY")?;
    let id = var("GITHUB_RUN_ID")?;
    let mut url = format!("{}/{repo}/actions/runs/{id}", server.trim_end_matches('/'));
    if let Some(attempt) = var("GITHUB_RUN_ATTEMPT").filter(|a| a != "1") {
        url.push_str(&format!("/attempts/{attempt}"));
    }
    Some(url)
}

/// Escapes a workflow-command message (`%`, CR, LF).
pub fn escape_workflow_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// In GitHub Actions: an `::error` annotation on the run.
pub fn github_error_annotation(title: &str, message: &str) {
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        let title = escape_workflow_data(title)
            .replace(':', "%3A")
            .replace(',', "%2C");
        // stderr: the runner reads workflow commands there too, and stdout stays pure JSON
        // under `--output json`.
        eprintln!("::error title={title}::{}", escape_workflow_data(message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_escaping() {
        assert_eq!(escape_workflow_data("a%b\r\nc"), "a%25b%0D%0Ac");
    }
}
