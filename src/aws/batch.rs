//! Reads that several followers ask of one API at about the same time, sent as one call:
//! `DescribeServices` takes up to 10 services of one cluster, `DescribeServiceDeployments` up
//! to 20 deployments. The services of a release are followed side by side, on one shared poll
//! grid (`crate::poll::Poll::aligned`), so their reads meet here and a release of ten services
//! costs ECS one read per round instead of ten.
//!
//! A batch is open for [`GATHER`] after its first read; whoever joins it meanwhile shares its
//! answer. A failed call answers `None` to all of them, and each one then asks alone, so an
//! error is always the caller's own (its resource named, its kind intact).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

/// How long a batch waits for more reads after its first.
pub const GATHER: Duration = Duration::from_millis(5);

/// Batches of reads, by group (one cluster, say): at most `max` keys per call.
pub struct Batcher<T> {
    open: Mutex<HashMap<String, Arc<Batch<T>>>>,
    max: usize,
}

struct Batch<T> {
    keys: Mutex<Vec<String>>,
    answer: OnceCell<Option<Arc<T>>>,
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> Batcher<T> {
    /// Batches of at most `max` keys.
    pub fn new(max: usize) -> Self {
        Batcher {
            open: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// Reads `key` of `group` with whichever reads join it: `call` gets every key of the batch
    /// (the first caller's `call` runs; all of a group's calls must ask the same thing).
    /// `None` when the call failed.
    pub async fn read<F, Fut>(&self, group: &str, key: &str, call: F) -> Option<Arc<T>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let batch = {
            let mut open = lock(&self.open);
            let joinable = open
                .get(group)
                .filter(|b| {
                    let keys = lock(&b.keys);
                    keys.len() < self.max || keys.iter().any(|k| k == key)
                })
                .cloned();
            let batch = joinable.unwrap_or_else(|| {
                let b = Arc::new(Batch {
                    keys: Mutex::new(Vec::new()),
                    answer: OnceCell::new(),
                });
                open.insert(group.to_string(), b.clone());
                b
            });
            let mut keys = lock(&batch.keys);
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
            drop(keys);
            batch
        };
        batch
            .answer
            .get_or_init(|| async {
                tokio::time::sleep(GATHER).await;
                // Closed: taken out of the open ones before its keys are read, under the same
                // lock that adds keys, so no read joins a batch already asked.
                let keys = {
                    let mut open = lock(&self.open);
                    if open.get(group).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                        open.remove(group);
                    }
                    lock(&batch.keys).clone()
                };
                call(keys).await.map(Arc::new)
            })
            .await
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Reads asked together share one call per group, a full batch starts another, a failed
    /// call answers `None` to everyone in it.
    #[tokio::test]
    async fn reads_asked_together_share_a_call() {
        let b: Batcher<Vec<String>> = Batcher::new(2);
        let calls = AtomicUsize::new(0);
        let read = |group: &'static str, key: &'static str, fail: bool| {
            let (b, calls) = (&b, &calls);
            async move {
                b.read(group, key, |keys| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    (!fail).then_some(keys)
                })
                .await
            }
        };
        let (a, b2, c, d) = tokio::join!(
            read("one", "web", false),
            read("one", "worker", false),
            read("one", "checkout", false),
            read("two", "api", false)
        );
        let keys = |r: Option<Arc<Vec<String>>>| r.map(|k| k.as_ref().clone());
        assert_eq!(keys(a.clone()), Some(vec!["web".into(), "worker".into()]));
        assert_eq!(keys(b2), keys(a), "the second read joined the first");
        assert_eq!(
            keys(c),
            Some(vec!["checkout".into()]),
            "a full batch starts another"
        );
        assert_eq!(keys(d), Some(vec!["api".into()]), "groups never mix");
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let (e, f) = tokio::join!(read("one", "web", true), read("one", "worker", true));
        assert!(e.is_none() && f.is_none(), "a failed call fails the batch");
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // Reads asked apart (after the batch closed) each make their own call.
        let g = read("one", "web", false).await;
        let h = read("one", "web", false).await;
        assert_eq!(keys(g), keys(h));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    }
}
