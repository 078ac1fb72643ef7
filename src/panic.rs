//! The last line of defence: a panic (a bug) ends ferry with exit 5, "needs a person", and
//! says what may have been in flight, instead of exit 101 and a backtrace.
//!
//! Long operations name themselves with [`set_activity`]; `main` calls [`install_hook`] once.

use std::sync::Mutex;

static ACTIVITY: Mutex<Option<String>> = Mutex::new(None);

/// Environment variable that makes ferry panic when an activity starting with its value
/// begins: the end-to-end test of the hook (never set it otherwise).
pub const TEST_PANIC_ENV: &str = "FERRY_TEST_PANIC";

/// Records what ferry is doing now, for the panic message.
pub fn set_activity(what: impl Into<String>) {
    let what = what.into();
    let test_panic = std::env::var(TEST_PANIC_ENV)
        .is_ok_and(|prefix| !prefix.is_empty() && what.starts_with(&prefix));
    *ACTIVITY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(what);
    if test_panic {
        panic!("{TEST_PANIC_ENV} asked for a panic");
    }
}

/// The message printed for a panic at `location` with `payload`, given the activity.
pub fn message(location: &str, payload: &str, activity: Option<&str>) -> String {
    let payload: String = payload.chars().take(500).collect();
    let in_flight = match activity {
        Some(a) => format!("in flight: {a}; it may be half done"),
        None => "in flight: nothing that changes an environment had started".to_string(),
    };
    format!(
        "error: ferry stopped on an internal error (panic at {location}: {payload})\n  \
         this is a bug in ferry, not in your input: please report it with this message\n  \
         {in_flight}\n\
         hint: run `ferry status` to see what each service runs, then re-run; finished steps say \"already done\"\n"
    )
}

/// Installs the hook: print [`message`] on stderr (and as a GitHub error annotation inside
/// Actions), then exit 5.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".into());
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        let activity = ACTIVITY.lock().ok().and_then(|a| a.clone());
        let text = message(&location, &payload, activity.as_deref());
        eprint!("{text}");
        if std::env::var_os("GITHUB_ACTIONS").is_some() {
            let line = text
                .replace('%', "%25")
                .replace('\r', "%0D")
                .replace('\n', "%0A");
            println!("::error title=ferry hit a bug::{line}");
        }
        std::process::exit(5);
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_says_bug_and_what_was_in_flight() {
        let m = super::message("src/x.rs:1", "boom", Some("copying a to b"));
        assert!(m.contains("this is a bug"), "{m}");
        assert!(m.contains("in flight: copying a to b"), "{m}");
        let m = super::message("src/x.rs:1", &"x".repeat(10_000), None);
        assert!(m.len() < 1000, "{}", m.len());
        assert!(m.contains("nothing that changes"), "{m}");
    }
}
