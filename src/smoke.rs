//! The HTTP smoke gate: after a rollout succeeds, the environment's checks must pass before
//! the release counts as deployed.
//!
//! A check retries with backoff until its deadline (a new task can take a moment to receive
//! traffic), each request has its own timeout, redirects are not followed unless configured,
//! and an optional JSON field must equal the release version so an old task still answering
//! does not pass. A check passes only after `consecutive` answers in a row pass (default 3):
//! while a load balancer still mixes old and new tasks, one lucky answer proves nothing.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::SmokeCheck;
use crate::poll::Poll;

#[derive(Debug, Clone, Serialize)]
pub struct SmokeResult {
    pub name: String,
    pub url: String,
    pub ok: bool,
    pub attempts: u32,
    /// Why the last attempt failed (or what passed).
    pub detail: String,
    pub seconds: f64,
}

/// Runs every check concurrently; all must pass. `versions` are the values the version field
/// may hold: the release version and tag and, for a promoted image, the version of the
/// release candidate it was built as (the same bytes report the same build).
pub async fn run(checks: &[SmokeCheck], versions: &[String]) -> Vec<SmokeResult> {
    futures_util::future::join_all(checks.iter().map(|c| run_one(c, versions))).await
}

async fn run_one(check: &SmokeCheck, versions: &[String]) -> SmokeResult {
    let name = check.name.clone().unwrap_or_else(|| check.url.clone());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(check.deadline_seconds);
    let redirect = if check.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(check.timeout_seconds))
        .redirect(redirect)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return SmokeResult {
                name,
                url: check.url.clone(),
                ok: false,
                attempts: 0,
                detail: format!("cannot build an HTTP client: {e}"),
                seconds: 0.0,
            }
        }
    };
    let mut attempts = 0;
    let mut passes = 0;
    let mut poll = Poll::with(Duration::from_millis(250), Duration::from_secs(5));
    let needed = check.consecutive.max(1);
    loop {
        attempts += 1;
        let outcome = attempt(&client, check, versions).await;
        let ok = outcome.is_ok();
        let mut detail = outcome.unwrap_or_else(|e| e);
        if ok {
            passes += 1;
        } else {
            passes = 0;
        }
        let passed = passes >= needed;
        let next = if ok {
            // Behind a load balancer that still mixes old and new tasks one lucky answer
            // proves little: ask again at once, until `consecutive` answers in a row pass.
            BETWEEN_PASSES
        } else {
            poll.next_delay()
        };
        if passed || Instant::now() + next >= deadline {
            if passed {
                if needed > 1 {
                    detail.push_str(&format!(" ({needed} answers in a row)"));
                }
                tracing::info!("smoke {name}: {detail}");
            } else {
                if ok {
                    detail = format!(
                        "only {passes} of the {needed} answers in a row needed passed before the deadline; the last: {detail}"
                    );
                }
                tracing::warn!("smoke {name}: failed after {attempts} attempt(s): {detail}");
            }
            return SmokeResult {
                name,
                url: check.url.clone(),
                ok: passed,
                attempts,
                detail,
                seconds: started.elapsed().as_secs_f64(),
            };
        }
        if !ok {
            tracing::info!(
                "smoke {name}: attempt {attempts}: {detail}; retrying in {:.1}s",
                next.as_secs_f64()
            );
        }
        tokio::time::sleep(next).await;
    }
}

/// The pause between answers that passed, while counting them.
const BETWEEN_PASSES: Duration = Duration::from_millis(100);

/// Why a request got no answer, in the words a person debugging it needs.
fn no_answer(e: &reqwest::Error, check: &SmokeCheck) -> String {
    let chain = {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    };
    let host = reqwest::Url::parse(&check.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    if e.is_timeout() {
        format!("no answer within {}s", check.timeout_seconds)
    } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
        format!(
            "DNS lookup of {host} failed (is the host name right, and does it resolve from here?)"
        )
    } else if chain.contains("Connection refused") || chain.contains("connection refused") {
        format!("connection refused by {host}")
    } else if e.is_connect() {
        format!(
            "cannot connect to {host}: {}",
            chain.rsplit(": ").next().unwrap_or("")
        )
    } else {
        format!("request failed: {chain}")
    }
}

/// One request: `Ok(what passed)` or `Err(why not)`.
async fn attempt(
    client: &reqwest::Client,
    check: &SmokeCheck,
    versions: &[String],
) -> Result<String, String> {
    let resp = client
        .get(&check.url)
        .send()
        .await
        .map_err(|e| no_answer(&e, check))?;
    let status = resp.status().as_u16();
    if status != check.expect_status {
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| format!(" (redirect to {l}; set follow_redirects = true to follow it)"))
            .unwrap_or_default();
        return Err(format!(
            "status {status}, expected {}{location}",
            check.expect_status
        ));
    }
    let Some(field) = &check.version_field else {
        return Ok(format!("status {status}"));
    };
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| format!("status {status} but the body is not JSON (needed for `{field}`)"))?;
    let found = field.split('.').try_fold(&json, |v, k| v.get(k));
    match found {
        None => Err(format!(
            "status {status} but the JSON has no field `{field}`"
        )),
        Some(v) => {
            let got = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            if versions.contains(&got) {
                Ok(format!("status {status}, {field} = {got}"))
            } else {
                Err(format!("status {status} but {field} = {got:?}, expected {:?} (an older release still answering?)", versions[0]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A real HTTP server on 127.0.0.1 answering each request with the next canned response.
    fn serve(responses: Vec<(u16, &'static str)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut s) = stream else { break };
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let (status, body) = responses[i.min(responses.len() - 1)];
                let extra = if status == 302 {
                    "Location: /elsewhere\r\n"
                } else {
                    ""
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}/health")
    }

    fn versions() -> Vec<String> {
        vec!["1.1.0".into(), "v1.1.0".into()]
    }

    fn check(url: String) -> SmokeCheck {
        SmokeCheck {
            name: None,
            url,
            expect_status: 200,
            version_field: Some("build.version".into()),
            deadline_seconds: 3,
            timeout_seconds: 1,
            follow_redirects: false,
            consecutive: 1,
        }
    }

    #[tokio::test]
    async fn retries_until_the_new_version_answers() {
        let url = serve(vec![
            (503, "{}"),
            (200, r#"{"build":{"version":"1.0.0"}}"#),
            (200, r#"{"build":{"version":"1.1.0"}}"#),
        ]);
        let r = run(&[check(url)], &versions()).await;
        assert!(r[0].ok, "{r:?}");
        assert_eq!(r[0].attempts, 3);
    }

    #[tokio::test]
    async fn a_mix_of_old_and_new_passes_only_after_answers_in_a_row() {
        let old = (200, r#"{"build":{"version":"1.0.0"}}"#);
        let new = (200, r#"{"build":{"version":"1.1.0"}}"#);
        let url = serve(vec![new, old, new, new, old, new, new, new]);
        let mut c = check(url);
        c.consecutive = 3;
        let r = run(&[c], &versions()).await;
        assert!(r[0].ok, "{r:?}");
        assert_eq!(r[0].attempts, 8, "the lucky first answers must not count");
        assert!(
            r[0].detail.contains("3 answers in a row"),
            "{}",
            r[0].detail
        );

        // Old and new keep alternating: never 2 in a row, so it fails at the deadline.
        let url = serve([new, old].repeat(200));
        let mut c = check(url);
        c.consecutive = 2;
        c.deadline_seconds = 1;
        let r = run(&[c], &versions()).await;
        assert!(!r[0].ok, "{r:?}");
    }

    #[tokio::test]
    async fn a_dns_failure_says_dns() {
        let mut c = check("http://no-such-host.invalid/health".into());
        c.deadline_seconds = 1;
        let r = run(&[c], &versions()).await;
        assert!(!r[0].ok);
        assert!(
            r[0].detail
                .contains("DNS lookup of no-such-host.invalid failed"),
            "{}",
            r[0].detail
        );
    }

    #[tokio::test]
    async fn old_version_fails_at_the_deadline() {
        let url = serve(vec![(200, r#"{"build":{"version":"1.0.0"}}"#)]);
        let r = run(&[check(url)], &versions()).await;
        assert!(!r[0].ok);
        assert!(
            r[0].detail.contains("expected \"1.1.0\""),
            "{}",
            r[0].detail
        );
        assert!(r[0].attempts > 1);
    }

    #[tokio::test]
    async fn redirects_are_not_followed_by_default() {
        let url = serve(vec![(302, "")]);
        let mut c = check(url);
        c.deadline_seconds = 1;
        let r = run(&[c], &versions()).await;
        assert!(!r[0].ok);
        assert!(r[0].detail.contains("follow_redirects"), "{}", r[0].detail);
    }

    #[tokio::test]
    async fn missing_field_and_refused_connection() {
        let url = serve(vec![(200, r#"{"version":"1.1.0"}"#)]);
        let mut c = check(url);
        c.deadline_seconds = 1;
        let r = run(&[c], &versions()).await;
        assert!(
            r[0].detail.contains("no field `build.version`"),
            "{}",
            r[0].detail
        );

        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = check(format!("http://127.0.0.1:{port}/"));
        c.deadline_seconds = 1;
        let r = run(&[c], &versions()).await;
        assert!(!r[0].ok);
        assert!(
            r[0].detail.contains("connection refused"),
            "{}",
            r[0].detail
        );
    }
}
