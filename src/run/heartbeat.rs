//! The run's hold on its claim: a lease (`crate::lease`), renewed by a tokio task every
//! `RENEW` while the run lives, and released when the run ends, or, when a signal or the run
//! deadline drops the run wherever it is, by [`release_held`] before the process exits
//! (`crate::commands::interrupted`). A run that dies without a word stops renewing, and its
//! claim lapses on its own. And `--wait-for-idle`'s wait for another run's live claim
//! ([`wait_for_claims`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::inflight::Released;
use crate::lease::{now_ms, Times};
use crate::records::store::{ClaimInfo, Store};

struct Shared {
    store: Store,
    /// Locked for the whole of a renewal, so a release never overlaps one.
    claim: Mutex<ClaimInfo>,
    stopped: AtomicBool,
    released: AtomicBool,
    task: StdMutex<Option<JoinHandle<()>>>,
    times: Times,
}

/// Every claim this process holds now.
static HELD: StdMutex<Vec<Arc<Shared>>> = StdMutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<Arc<Shared>>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// A claim held by this run, renewed until [`Lease::release`].
pub struct Lease(Arc<Shared>);

/// Holds `claim` (just pushed to `store`): renews it every `times.renew`, and registers it so
/// that an interruption releases it.
pub fn hold(store: &Store, claim: ClaimInfo, times: Times) -> Lease {
    let shared = Arc::new(Shared {
        store: store.clone(),
        claim: Mutex::new(claim),
        stopped: AtomicBool::new(false),
        released: AtomicBool::new(false),
        task: StdMutex::new(None),
        times,
    });
    let task = tokio::spawn(renew(shared.clone(), times));
    *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    held().push(shared.clone());
    Lease(shared)
}

impl Lease {
    /// The claim as it is now (its digest changes at each renewal).
    pub async fn claim(&self) -> ClaimInfo {
        self.0.claim.lock().await.clone()
    }

    /// Marks the claim held (this run went on; `crate::gate::first_look`), renewing it on the
    /// way, in one request; the manifest it replaces is removed afterwards. Every later
    /// renewal keeps it held.
    pub async fn mark_held(&self) -> anyhow::Result<()> {
        let mut c = self.0.claim.lock().await;
        let mut held = c.clone();
        held.held = true;
        let expires = now_ms() + self.0.times.ttl.as_millis() as u64;
        let before = std::mem::replace(&mut *c, self.0.store.rewrite(&held, expires).await?);
        let (store, now) = (self.0.store.clone(), c.clone());
        tokio::spawn(async move { store.drop_replaced(&before, &now).await });
        Ok(())
    }

    /// Stops renewing and removes the claim; a failure is said, and the claim lapses.
    pub async fn release(self) {
        let _ = release_one(&self.0).await;
    }
}

async fn renew(s: Arc<Shared>, times: Times) {
    let ttl = times.ttl.as_millis() as u64;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + times.renew, times.renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut c = s.claim.lock().await;
        if s.stopped.load(Ordering::SeqCst) {
            return;
        }
        // Bounded, so that a release (which waits for a renewal under way) is never held long.
        let bound = times.renew.max(Duration::from_secs(10));
        let renewal = tokio::time::timeout(bound, s.store.renew(&c, now_ms() + ttl)).await;
        match renewal {
            Ok(Ok(renewed)) => {
                tracing::debug!(
                    "renewed the claim {} until {}",
                    renewed.tag.tag,
                    renewed.expires_ms
                );
                *c = renewed;
            }
            Ok(Err(e)) => warn_unrenewed(&c, &format!("{e:#}"), times),
            Err(_) => warn_unrenewed(&c, "no answer", times),
        }
    }
}

fn warn_unrenewed(c: &ClaimInfo, why: &str, times: Times) {
    let left = c.expires_ms.saturating_sub(now_ms()) / 1000;
    tracing::warn!(
        "could not renew the claim {}: {why}; trying again in {}s (it lapses in {left}s unless renewed)",
        c.tag.tag,
        times.renew.as_secs()
    );
}

async fn release_one(s: &Arc<Shared>) -> Option<Result<String, (String, String)>> {
    if s.released.swap(true, Ordering::SeqCst) {
        return None;
    }
    s.stopped.store(true, Ordering::SeqCst);
    let c = s.claim.lock().await;
    if let Some(t) = s.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
        t.abort();
    }
    held().retain(|h| !Arc::ptr_eq(h, s));
    Some(match s.store.release(&c).await {
        Ok(()) => Ok(c.tag.tag.clone()),
        Err(e) => {
            tracing::warn!(
                "could not remove the claim {} from {}: {e:#}; it lapses within {}s of its last renewal",
                c.tag.tag,
                s.store.location(),
                (crate::lease::TTL + crate::lease::SKEW).as_secs()
            );
            Err((c.tag.tag.clone(), format!("{e:#}")))
        }
    })
}

/// Releases every claim this process holds, waiting at most `bound` (an interrupted run has
/// seconds before the next signal); what could not be released in time is said as left.
pub async fn release_held(bound: Duration) -> Released {
    let all: Vec<Arc<Shared>> = held().clone();
    let done = Arc::new(StdMutex::new(Released::default()));
    let mut names = Vec::new();
    for s in &all {
        if let Ok(c) = s.claim.try_lock() {
            names.push(c.tag.tag.clone());
        }
    }
    let releases = futures_util::future::join_all(all.iter().map(|s| {
        let done = done.clone();
        async move {
            let r = release_one(s).await;
            let mut d = done.lock().unwrap_or_else(|p| p.into_inner());
            match r {
                Some(Ok(tag)) => d.released.push(tag),
                Some(Err(left)) => d.left.push(left),
                None => {}
            }
        }
    }));
    let timed_out = tokio::time::timeout(bound, releases).await.is_err();
    let mut out = done.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if timed_out {
        for n in names {
            if !out.released.contains(&n) && !out.left.iter().any(|(t, _)| *t == n) {
                out.left
                    .push((n, format!("no answer within {}s", bound.as_secs())));
            }
        }
    }
    out
}
