//! Time as `u64` nanoseconds since a clock's origin.
//!
//! The limiters read the clock once per check; the algorithms never read it (time is passed
//! in). A limiter lives as long as its clock reads below 2^61 ns (about 73 years) from its
//! origin; later times are read as 2^61 and the buckets stop refilling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ticks::MAX_NANOS;

/// How long a limiter lives: times are nanoseconds since the clock's origin, exact up to
/// 2^61 ns (about 73 years); later times read as 2^61 ns, and buckets stop refilling.
pub const LIFETIME: Duration = Duration::from_nanos(MAX_NANOS);

/// A source of time: nanoseconds since an origin of the clock's choosing.
pub trait Clock: Send + Sync {
    /// Nanoseconds since this clock's origin. Should not go backwards; when it does, the
    /// limiters gain no time from it (see the crate's semantics).
    fn now(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// The default clock: [`MonotonicClock`] with the `quanta` feature (default), else [`StdClock`].
#[cfg(feature = "quanta")]
pub type DefaultClock = MonotonicClock;
/// The default clock: [`MonotonicClock`] with the `quanta` feature (default), else [`StdClock`].
#[cfg(not(feature = "quanta"))]
pub type DefaultClock = StdClock;

/// `std::time::Instant`, measured from the clock's creation. Portable; a system call or vDSO
/// read per check.
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    origin: Instant,
}

impl StdClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A monotonic clock read from the CPU's time-stamp counter where it is reliable (through
/// `quanta`) instead of calling into the OS; it falls back to the OS
/// clock elsewhere. Measured from the clock's creation.
#[cfg(feature = "quanta")]
#[derive(Clone, Debug)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    origin: u64,
}

#[cfg(feature = "quanta")]
impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        Self { clock, origin }
    }
}

#[cfg(feature = "quanta")]
impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "quanta")]
impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> u64 {
        self.clock.delta_as_nanos(self.origin, self.clock.raw())
    }
}

/// A cached clock for the hottest paths: reading it is one atomic load of a time that a
/// background thread refreshes every `interval`.
///
/// The trade-off: the time it reads lags real time by up to `interval` (plus scheduling delay
/// of the refresh thread). A limiter on this clock behaves as if every request arrived up to
/// `interval` earlier: refill is seen late, never early, so it never admits more than the
/// quota; `retry_after` can be up to `interval` too long. Keep `interval` well below the
/// quota's emission interval if that matters (1 ms suits quotas of up to ~1,000 per second).
///
/// The refresh thread is process-wide (quanta's upkeep) and stops when the last clone of the
/// clock is dropped.
#[cfg(feature = "quanta")]
#[derive(Clone, Debug)]
pub struct CoarseClock {
    origin: quanta::Instant,
    _upkeep: Arc<quanta::Handle>,
}

#[cfg(feature = "quanta")]
impl CoarseClock {
    /// Starts the refresh thread. Fails if one is already running in this process (quanta
    /// allows one): share one `CoarseClock` (it is cheap to clone) instead.
    pub fn start(interval: Duration) -> Result<Self, quanta::Error> {
        let handle = quanta::Upkeep::new(interval).start()?;
        Ok(Self {
            origin: quanta::Instant::recent(),
            _upkeep: Arc::new(handle),
        })
    }
}

#[cfg(feature = "quanta")]
impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> u64 {
        let elapsed = quanta::Instant::recent().saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to: for tests, simulations and replaying logs.
///
/// Clones share one time, so a test keeps a clone and moves the limiter's clock. It may be set
/// backwards, to exercise stale times.
///
/// ```
/// use nanolimit::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(5);
/// let shared = clock.clone();
/// clock.advance(Duration::from_nanos(10));
/// assert_eq!(shared.now(), 15);
/// clock.set(3);
/// assert_eq!(shared.now(), 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `nanos`.
    pub fn new(nanos: u64) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(nanos)),
        }
    }

    /// Sets the time, forwards or backwards.
    pub fn set(&self, nanos: u64) {
        // Relaxed: the time is a single value; no other data is published with it.
        self.nanos.store(nanos, Ordering::Relaxed);
    }

    /// Moves the time forwards by `by` (saturating at `u64::MAX` ns).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: as in `set`; the read-modify-write keeps concurrent advances additive.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        // Relaxed: see `set`.
        self.nanos.load(Ordering::Relaxed)
    }
}
