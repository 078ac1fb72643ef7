//! A blob body that is hashed and counted while it streams from the source to the
//! destination, with its last byte held back until the whole blob is proven.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::digest::{Digest, Hasher};

pub(super) enum State {
    Streaming,
    /// The source ended and the bytes check out: hand over the held chunk, then end.
    Verified,
    Done,
}

/// A blob body that hashes and counts what passes, and holds the last byte back until the
/// whole blob is proven: a short, long or corrupt source ends the upload with an error before
/// the destination has every byte, so it cannot commit. Every other byte passes on at once,
/// and the held one is a copy: a held chunk would keep the source connection's read buffer
/// (up to 400 KiB) alive, so that it allocates another one for the next chunk.
pub(super) struct Verify {
    pub(super) inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pub(super) hasher: Option<Hasher>,
    pub(super) seen: u64,
    pub(super) size: u64,
    pub(super) digest: Digest,
    pub(super) held: Option<Bytes>,
    pub(super) state: State,
    pub(super) fault: Arc<Mutex<Option<String>>>,
    pub(super) counter: Arc<AtomicU64>,
    pub(super) from: String,
}

impl Verify {
    fn fail(&mut self, msg: String) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        self.state = State::Done;
        self.held = None;
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
            "{}@{}: {msg}; the source's copy is corrupt (nothing was committed at the destination)",
            self.from, self.digest
        ));
        Poll::Ready(Some(Err(std::io::Error::other(msg))))
    }
}

impl Stream for Verify {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.state {
                State::Done => return Poll::Ready(None),
                State::Verified => {
                    self.state = State::Done;
                    return Poll::Ready(self.held.take().map(Ok));
                }
                State::Streaming => {}
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(mut chunk))) => {
                    self.seen += chunk.len() as u64;
                    if self.seen > self.size {
                        let size = self.size;
                        return self.fail(format!(
                            "the source sent more than the {size} bytes the manifest says"
                        ));
                    }
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    self.counter
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if self.seen == self.size {
                        if let Some(&last) = chunk.last() {
                            self.held = Some(Bytes::copy_from_slice(&[last]));
                            chunk.truncate(chunk.len() - 1);
                        }
                    }
                    if !chunk.is_empty() {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // A dropped source connection: transient, retried by the caller.
                    self.state = State::Done;
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        crate::redact::reqwest_error(&e),
                    ))));
                }
                Poll::Ready(None) => {
                    if self.seen != self.size {
                        let (seen, size) = (self.seen, self.size);
                        return self.fail(format!(
                            "the source sent {seen} bytes, the manifest says {size}"
                        ));
                    }
                    let got = self.hasher.take().map(Hasher::finish);
                    if got.as_ref() != Some(&self.digest) {
                        let got = got.map(|d| d.to_string()).unwrap_or_default();
                        return self.fail(format!("the source's bytes hash to {got}"));
                    }
                    self.state = State::Verified;
                }
            }
        }
    }
}
