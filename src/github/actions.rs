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

/// The link to the current GitHub Actions run (attempt included when it is a re-run), from
/// `GITHUB_SERVER_URL`, `GITHUB_REPOSITORY`, `GITHUB_RUN_ID` and `GITHUB_RUN_ATTEMPT`.
pub fn run_url() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    run_url_from(
        var("GITHUB_SERVER_URL").as_deref(),
        var("GITHUB_REPOSITORY").as_deref(),
        var("GITHUB_RUN_ID").as_deref(),
        var("GITHUB_RUN_ATTEMPT").as_deref(),
    )
}

/// [`run_url`] from explicit values (the server defaults to github.com). Values that do not
/// look like what GitHub sets (a run id that is not a number, a server that is not an http(s)
/// URL) give no link rather than a wrong one.
pub fn run_url_from(
    server: Option<&str>,
    repo: Option<&str>,
    run_id: Option<&str>,
    attempt: Option<&str>,
) -> Option<String> {
    let digits = |s: &&str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let run_id = run_id.filter(digits)?;
    let mut url = repository_page(server, repo?, &format!("actions/runs/{run_id}"))?;
    if let Some(a) = attempt.filter(digits) {
        url.push_str(&format!("/attempts/{a}"));
    }
    Some(url)
}

/// A page of the repository `owner/name` on `server` (default github.com): `<server>/<repo>/<page>`.
/// `None` for a server that is not an http(s) URL or a repository that is not owner/name.
pub fn repository_page(server: Option<&str>, repo: &str, page: &str) -> Option<String> {
    repo.split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty())?;
    let server = url::Url::parse(server.unwrap_or("https://github.com").trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))?;
    Some(format!(
        "{}/{repo}/{page}",
        server.as_str().trim_end_matches('/')
    ))
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
    fn run_urls() {
        assert_eq!(
            run_url_from(None, Some("acme/shop"), Some("7"), Some("1")).as_deref(),
            Some("https://github.com/acme/shop/actions/runs/7/attempts/1")
        );
        assert_eq!(
            run_url_from(Some("https://ghe.example/"), Some("a/b"), Some("7"), None).as_deref(),
            Some("https://ghe.example/a/b/actions/runs/7")
        );
        assert_eq!(run_url_from(None, None, Some("7"), None), None);
        assert_eq!(run_url_from(None, Some("a/b"), Some("7; rm"), None), None);
        assert_eq!(
            run_url_from(Some("javascript:x"), Some("a/b"), Some("7"), None),
            None
        );
    }

    #[test]
    fn workflow_escaping() {
        assert_eq!(escape_workflow_data("a%b\r\nc"), "a%25b%0D%0Ac");
    }
}
