//! `--wait-for-idle` for a claim: waiting until no live claim of another run holds the
//! environment, for `plan` and `deploy` alike (`run` calls it when its own claim is refused).

use std::time::Duration;

use crate::records::store::Store;

/// How long `--wait-for-idle` waits for another run's claim at most (as for a deployment).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Waits until no live claim of another run holds `environment` (`--wait-for-idle`), saying
/// what it waits for; at most an hour, and never so long that a rollout (a minute at least)
/// no longer fits before the run `deadline`. Refuses (exit 3, nothing changed) past that.
pub async fn wait_for_claims(
    store: &Store,
    environment: &str,
    deadline: Option<crate::deadline::Deadline>,
) -> anyhow::Result<()> {
    let wait = deadline.map_or(IDLE_WAIT, |d| {
        IDLE_WAIT.min(d.remaining().saturating_sub(crate::deadline::MIN_ROLLOUT))
    });
    let until = std::time::Instant::now() + wait;
    let mut poll = crate::poll::Poll::with(Duration::from_secs(1), Duration::from_secs(5));
    let mut said = String::new();
    let mut last_said = std::time::Instant::now();
    loop {
        let cat = store.catalog().await?;
        let claims = store.claims(&cat).await?;
        let reader = crate::lease::Reader::now()?;
        let Err(busy) = crate::gate::overlap(environment, &claims, None, &reader) else {
            if !said.is_empty() {
                tracing::info!("{environment}: the other run's claim ended; going on");
            }
            return Ok(());
        };
        let holder = claims
            .iter()
            .filter(|c| reader.is_live(c))
            .min_by_key(|c| (c.claimed_ms, c.tag.nonce.clone()));
        let (tag, lapses) = holder.map_or((String::new(), 0), |c| {
            (
                c.tag.tag.clone(),
                reader.lapses_at(c).saturating_sub(reader.now_ms) / 1000,
            )
        });
        if std::time::Instant::now() > until {
            let why = if wait < IDLE_WAIT {
                " (all the run deadline allowed)"
            } else {
                ""
            };
            return Err(crate::error::Failure::refused(format!(
                "{environment} stayed claimed by another run for {}{why}: {}",
                crate::deadline::show(wait),
                busy.message
            ))
            .hint(busy.hint)
            .into());
        }
        if said != tag || last_said.elapsed() >= Duration::from_secs(30) {
            tracing::info!(
                "{environment}: waiting for another run's claim {tag} to end (it is released when that run ends, or lapses in {lapses}s unless renewed)"
            );
            said = tag;
            last_said = std::time::Instant::now();
        }
        poll.wait().await;
    }
}
