//! An optional background thread that sweeps idle keys on a timer.

use core::hash::{BuildHasher, Hash};
use core::time::Duration;
use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};

use super::KeyedLimiter;
use crate::algorithm::Algorithm;
use crate::clock::Clock;

/// A running sweeper thread ([`KeyedLimiter::spawn_sweeper`]). Dropping it stops the thread
/// (and waits for a sweep in progress to finish).
#[derive(Debug)]
pub struct SweeperHandle {
    /// Dropped to stop the thread: its `recv_timeout` then returns `Disconnected`.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SweeperHandle {
    /// Stops the thread and waits for it.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for SweeperHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the sweeper thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl<K, A, C, S> KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    A: Algorithm,
    C: Clock + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Starts a thread that calls [`evict_idle`](Self::evict_idle) every `every`. The thread
    /// holds only a weak reference: it stops when the handle is dropped or when the limiter
    /// is. Not needed for bounded memory (amortized eviction and `max_keys` need no thread);
    /// useful to give memory back promptly when traffic stops.
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::default();
    /// let limiter = Arc::new(
    ///     KeyedLimiter::builder(Quota::per_second(1)?).clock(clock.clone()).build(),
    /// );
    /// limiter.check_key(&7u64).unwrap();
    /// clock.advance(Duration::from_secs(1));
    /// let sweeper = limiter.spawn_sweeper(Duration::from_millis(1)).unwrap();
    /// while !limiter.is_empty() {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// drop(sweeper);
    /// assert!(limiter.stats().sweeps >= 1);
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> io::Result<SweeperHandle> {
        let limiter: Weak<Self> = Arc::downgrade(self);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("nanolimit-sweeper".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => match limiter.upgrade() {
                        Some(limiter) => {
                            limiter.evict_idle();
                        }
                        None => return,
                    },
                    // The handle was dropped (nothing is ever sent).
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(SweeperHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}
