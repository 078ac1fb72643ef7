//! Notifications against real HTTP receivers on 127.0.0.1: what Slack and a generic webhook
//! receive, and that a slow, failing or missing receiver never stops the caller nor leaks the
//! URL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::notify::{self, Event, EventKind, NotifyKind, NotifyTarget};
use serde_json::Value;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) request_line: String,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

/// A tiny HTTP/1.1 receiver: records each request and answers `status`, or never answers
/// when `status` is 0.
pub(crate) fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            if status == 0 {
                // Hold the connection open without a word until the client gives up.
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(30));
                    drop(stream);
                });
                continue;
            }
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let (mut len, mut content_type) = (0usize, String::new());
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "content-type" => content_type = v.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Seen {
                request_line: request_line.trim().to_string(),
                content_type,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

fn event(kind: EventKind) -> Event {
    Event {
        kind,
        release: "v2.0.0".into(),
        version: "2.0.0".into(),
        environment: "production".into(),
        digest: Some(format!("sha256:{}", "c0ffee00".repeat(8))),
        verdict: "smoke check api failed: HTTP 503; rolled back to v1.9.0".into(),
        run_url: Some("https://github.com/acme/shop/actions/runs/99".into()),
    }
}

fn target(kind: NotifyKind, var: &str, on: Option<Vec<EventKind>>) -> NotifyTarget {
    NotifyTarget {
        kind,
        url_env: var.into(),
        on,
    }
}

#[tokio::test]
async fn slack_and_webhook_receive_the_event() {
    let (slack_url, slack) = receiver(200);
    let (hook_url, hook) = receiver(204);
    // A secret-looking path, as a real Slack URL has.
    std::env::set_var(
        "FERRY_TEST_SLACK_URL",
        format!("{slack_url}/services/T000/B000/s3cretpath"),
    );
    std::env::set_var("FERRY_TEST_HOOK_URL", format!("{hook_url}/deploys"));
    let targets = [
        target(NotifyKind::Slack, "FERRY_TEST_SLACK_URL", None),
        target(
            NotifyKind::Webhook,
            "FERRY_TEST_HOOK_URL",
            Some(vec![EventKind::Failure, EventKind::Rollback]),
        ),
    ];

    let out = notify::send(&targets, &event(EventKind::Rollback)).await;
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|d| d.ok), "{out:?}");
    assert_eq!(out[0].target, "slack ($FERRY_TEST_SLACK_URL)");
    assert_eq!(out[1].detail, "HTTP 204");

    let s = slack.lock().unwrap().clone();
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].request_line,
        "POST /services/T000/B000/s3cretpath HTTP/1.1"
    );
    assert!(s[0].content_type.starts_with("application/json"));
    let text = s[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("*v2.0.0* rolled back — *production*"),
        "{text}"
    );
    assert!(text.contains("`sha256:c0ffee00…`"), "{text}");
    assert!(text.contains("<https://github.com/acme/shop/actions/runs/99|the run>"));

    let h = hook.lock().unwrap().clone();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].request_line, "POST /deploys HTTP/1.1");
    let b = &h[0].body;
    assert_eq!(b["event"], "rollback");
    assert_eq!(b["release"], "v2.0.0");
    assert_eq!(b["environment"], "production");
    assert_eq!(b["digest"], format!("sha256:{}", "c0ffee00".repeat(8)));
    assert_eq!(b["run_url"], "https://github.com/acme/shop/actions/runs/99");
    assert!(b["verdict"].as_str().unwrap().contains("rolled back"));

    // A success goes to Slack only: the webhook asked for failures and rollbacks.
    let out = notify::send(&targets, &event(EventKind::Success)).await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(slack.lock().unwrap().len(), 2);
    assert_eq!(hook.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn failing_slow_and_missing_receivers_never_stop_the_caller() {
    let (bad_url, bad) = receiver(500);
    let (slow_url, _) = receiver(0);
    std::env::set_var(
        "FERRY_TEST_BAD_URL",
        format!("{bad_url}/hook?token=s3cret-token"),
    );
    std::env::set_var("FERRY_TEST_SLOW_URL", format!("{slow_url}/s3cret-slow"));
    std::env::remove_var("FERRY_TEST_UNSET_URL");
    std::env::set_var("FERRY_TEST_NOT_A_URL", "s3cret-not-a-url");
    // Nothing listens on this port once the listener is dropped.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::env::set_var(
        "FERRY_TEST_CLOSED_URL",
        format!("http://127.0.0.1:{closed}/s3cret-closed"),
    );
    let targets = [
        target(NotifyKind::Webhook, "FERRY_TEST_BAD_URL", None),
        target(NotifyKind::Webhook, "FERRY_TEST_SLOW_URL", None),
        target(NotifyKind::Slack, "FERRY_TEST_UNSET_URL", None),
        target(NotifyKind::Slack, "FERRY_TEST_NOT_A_URL", None),
        target(NotifyKind::Webhook, "FERRY_TEST_CLOSED_URL", None),
    ];
    let started = Instant::now();
    let out =
        notify::send_with_timeout(&targets, &event(EventKind::Start), Duration::from_secs(1)).await;
    let took = started.elapsed();
    // Concurrent, each bounded by the timeout: the slow receiver costs ~1 s, not more.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|d| !d.ok), "{out:?}");
    assert_eq!(out[0].detail, "answered HTTP 500");
    assert_eq!(
        bad.lock().unwrap().len(),
        1,
        "the failing receiver was asked once"
    );
    assert!(out[1].detail.contains("no answer within 1s"), "{out:?}");
    assert!(
        out[2].detail.contains("FERRY_TEST_UNSET_URL is not set"),
        "{out:?}"
    );
    assert!(out[3].detail.contains("not hold an http(s) URL"), "{out:?}");
    assert!(!out[4].detail.is_empty());
    // The URLs are secrets: no detail may show one.
    let all = format!("{out:?}");
    assert!(!all.contains("s3cret"), "a URL leaked: {all}");

    // No target wants the event: nothing is sent at all.
    let quiet = [target(
        NotifyKind::Webhook,
        "FERRY_TEST_BAD_URL",
        Some(vec![EventKind::Rollback]),
    )];
    assert!(notify::send(&quiet, &event(EventKind::Success))
        .await
        .is_empty());
    assert_eq!(bad.lock().unwrap().len(), 1);
}
