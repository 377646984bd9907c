//! The bounded blocking pool: where synchronous applications, offloaded
//! jobs and switch continuations run, off the event loop.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use rgi_async::{Job, OffloadError, OffloadService};

/// The size of a [`Pool`].
///
/// # Examples
///
/// ```
/// let config = rgi_tower::PoolConfig { threads: 8, queue: 32, per_connection: 4 };
/// assert_eq!(config.capacity(), 40);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads, all started with the pool (at least one is).
    pub threads: usize,
    /// Jobs admitted beyond those running, waiting for a free thread.
    pub queue: usize,
    /// Jobs one connection may have admitted at once (running or queued),
    /// so that one HTTP/2 connection cannot take the whole pool; at least
    /// one.
    pub per_connection: usize,
}

impl PoolConfig {
    /// Jobs the pool admits at once: running plus queued.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        self.threads.saturating_add(self.queue)
    }
}

impl Default for PoolConfig {
    /// 64 threads, a queue of 256, 32 jobs per connection: enough for a
    /// blocking application on a small machine, bounded everywhere.
    fn default() -> Self {
        PoolConfig {
            threads: 64,
            queue: 256,
            per_connection: 32,
        }
    }
}

/// Why the pool refused a job; the job was dropped unrun.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Every thread is busy and the queue is full.
    #[error("blocking pool saturated ({capacity} jobs running or queued)")]
    Saturated {
        /// Threads plus queue: the jobs the pool admits at once.
        capacity: usize,
    },
    /// The connection already has its share of the pool admitted.
    #[error("connection has its {per_connection} blocking jobs admitted already")]
    ConnectionSaturated {
        /// The per-connection cap.
        per_connection: usize,
    },
    /// The pool was shut down.
    #[error("blocking pool shut down")]
    ShutDown,
}

impl From<PoolError> for OffloadError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Saturated { capacity } => OffloadError::Saturated { capacity },
            PoolError::ConnectionSaturated { per_connection } => OffloadError::Saturated {
                capacity: per_connection,
            },
            PoolError::ShutDown => OffloadError::ShutDown,
        }
    }
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Jobs running on a worker thread now.
    pub running: usize,
    /// Jobs admitted and waiting for a thread.
    pub queued: usize,
    /// Jobs refused since the pool started (full, per-connection cap, or
    /// shut down).
    pub rejected: u64,
}

/// A unit of work for the pool.
type Work = Box<dyn FnOnce() + Send + 'static>;

/// What the worker threads share.
struct Inner {
    config: PoolConfig,
    queue: Mutex<Queue>,
    work_ready: Condvar,
    /// Running plus queued: what admission counts against the capacity.
    admitted: AtomicUsize,
    running: AtomicUsize,
    rejected: AtomicU64,
}

struct Queue {
    jobs: VecDeque<Work>,
    shut_down: bool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A job never runs under the lock, so a poisoned lock only means a
        // panic between two plain field updates: the queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reject(&self, error: PoolError) -> PoolError {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        error
    }

    fn admit(&self, work: Work) -> Result<(), PoolError> {
        let capacity = self.config.capacity();
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < capacity).then_some(count + 1)
            });
        if taken.is_err() {
            return Err(self.reject(PoolError::Saturated { capacity }));
        }
        let mut queue = self.lock();
        if queue.shut_down {
            drop(queue);
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            // The job is dropped here, unrun, outside the lock.
            drop(work);
            return Err(self.reject(PoolError::ShutDown));
        }
        queue.jobs.push_back(work);
        drop(queue);
        self.work_ready.notify_one();
        Ok(())
    }

    fn worker(&self) {
        loop {
            let work = {
                let mut queue = self.lock();
                loop {
                    if let Some(work) = queue.jobs.pop_front() {
                        self.running.fetch_add(1, Ordering::AcqRel);
                        break work;
                    }
                    if queue.shut_down {
                        return;
                    }
                    queue = self
                        .work_ready
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            // A job that panics must not take its thread with it: the pool
            // would shrink by one thread per panic.
            if catch_unwind(AssertUnwindSafe(work)).is_err() {
                tracing::error!("a blocking pool job panicked; the worker thread goes on");
            }
            self.running.fetch_sub(1, Ordering::AcqRel);
            self.admitted.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn shut_down(&self) {
        let dropped = {
            let mut queue = self.lock();
            queue.shut_down = true;
            std::mem::take(&mut queue.jobs)
        };
        self.admitted.fetch_sub(dropped.len(), Ordering::AcqRel);
        self.work_ready.notify_all();
        // Jobs dropped unrun report that to whoever waits on them; outside
        // the lock, since their drop may wake other code.
        drop(dropped);
    }
}

/// Shuts the workers down when the last [`Pool`] handle goes.
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.inner.shut_down();
    }
}

/// A bounded pool of blocking worker threads.
///
/// The threads start with the pool; a job is admitted only while fewer than
/// [`PoolConfig::capacity`] are running or queued, so nothing ever queues
/// without bound: a full pool refuses with a [`PoolError`] at once (a server
/// answers `503` with `Retry-After`). A job that panics is contained; its
/// thread goes on. Dropping the last handle (or [`Pool::shut_down`]) stops
/// the threads once their current job ends and drops the queued jobs unrun.
///
/// `Pool` is also an [`OffloadService`] without a per-connection cap; a
/// connection's share goes through [`Pool::connection`].
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use rgi_tower::{Pool, PoolConfig, PoolError};
///
/// let pool = Pool::new(PoolConfig { threads: 1, queue: 0, per_connection: 1 });
/// let (release, blocked) = mpsc::channel::<()>();
/// let (done, finished) = mpsc::channel();
/// pool.try_execute(move || {
///     blocked.recv().ok();
///     done.send(()).ok();
/// })?;
/// // The only thread is taken and there is no queue: refused, not queued.
/// assert!(matches!(pool.try_execute(|| ()), Err(PoolError::Saturated { capacity: 1 })));
/// assert_eq!(pool.stats().rejected, 1);
/// release.send(()).ok();
/// finished.recv()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pool {
    owner: Arc<Owner>,
}

impl Pool {
    /// Starts a pool of `config.threads` threads (at least one).
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start a thread, as
    /// [`std::thread::spawn`] does.
    #[must_use]
    pub fn new(config: PoolConfig) -> Self {
        let config = PoolConfig {
            threads: config.threads.max(1),
            per_connection: config.per_connection.max(1),
            ..config
        };
        let inner = Arc::new(Inner {
            config,
            queue: Mutex::new(Queue {
                jobs: VecDeque::with_capacity(config.queue.min(1024)),
                shut_down: false,
            }),
            work_ready: Condvar::new(),
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        });
        for index in 0..config.threads {
            let worker = Arc::clone(&inner);
            #[allow(
                clippy::expect_used,
                reason = "a pool without its threads cannot serve; documented under # Panics"
            )]
            thread::Builder::new()
                .name(format!("rgi-pool-{index}"))
                .spawn(move || worker.worker())
                .expect("failed to start a blocking pool thread");
        }
        Pool {
            owner: Arc::new(Owner { inner }),
        }
    }

    fn inner(&self) -> &Inner {
        &self.owner.inner
    }

    /// The pool's size.
    #[must_use]
    pub fn config(&self) -> PoolConfig {
        self.inner().config
    }

    /// Admits `job` to run on a worker thread, now or after the jobs queued
    /// before it. Never blocks.
    ///
    /// # Errors
    ///
    /// [`PoolError::Saturated`] when running plus queued jobs reach the
    /// capacity, [`PoolError::ShutDown`] after shutdown; `job` is then
    /// dropped unrun.
    pub fn try_execute(&self, job: impl FnOnce() + Send + 'static) -> Result<(), PoolError> {
        self.inner().admit(Box::new(job))
    }

    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        let inner = self.inner();
        let running = inner.running.load(Ordering::Acquire);
        let admitted = inner.admitted.load(Ordering::Acquire);
        PoolStats {
            running,
            queued: admitted.saturating_sub(running),
            rejected: inner.rejected.load(Ordering::Relaxed),
        }
    }

    /// A connection's share of the pool: at most
    /// [`PoolConfig::per_connection`] of its jobs admitted at once.
    #[must_use]
    pub fn connection(&self) -> ConnectionPool {
        ConnectionPool {
            pool: self.clone(),
            admitted: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Stops accepting jobs, drops the queued ones unrun, and lets each
    /// thread end after its current job. Other handles see
    /// [`PoolError::ShutDown`] from then on.
    pub fn shut_down(&self) {
        self.inner().shut_down();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.inner().config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl OffloadService for Pool {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        self.try_execute(move || job.run()).map_err(Into::into)
    }
}

/// One connection's handle on a [`Pool`], enforcing the per-connection cap.
///
/// Cloning it shares the connection's count.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use rgi_tower::{Pool, PoolConfig, PoolError};
///
/// let pool = Pool::new(PoolConfig { threads: 4, queue: 0, per_connection: 1 });
/// let (first, second) = (pool.connection(), pool.connection());
/// let (release, blocked) = mpsc::channel::<()>();
/// first.try_execute(move || { blocked.recv().ok(); })?;
/// assert!(matches!(
///     first.try_execute(|| ()),
///     Err(PoolError::ConnectionSaturated { per_connection: 1 })
/// ));
/// // Another connection still has its share.
/// second.try_execute(|| ())?;
/// release.send(()).ok();
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Clone)]
pub struct ConnectionPool {
    pool: Pool,
    admitted: Arc<AtomicUsize>,
}

impl ConnectionPool {
    /// Admits `job` if the connection is under its cap and the pool under
    /// its capacity.
    ///
    /// # Errors
    ///
    /// [`PoolError::ConnectionSaturated`] at the connection's cap, else as
    /// [`Pool::try_execute`].
    pub fn try_execute(&self, job: impl FnOnce() + Send + 'static) -> Result<(), PoolError> {
        let inner = self.pool.inner();
        let per_connection = inner.config.per_connection;
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < per_connection).then_some(count + 1)
            });
        if taken.is_err() {
            return Err(inner.reject(PoolError::ConnectionSaturated { per_connection }));
        }
        // Released when the job is done with, run or dropped unrun.
        let share = ShareGuard(Arc::clone(&self.admitted));
        inner.admit(Box::new(move || {
            let _share = share;
            job();
        }))
    }

    /// The connection's jobs admitted now (running or queued).
    #[must_use]
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// The pool this share is of.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("admitted", &self.admitted())
            .field("pool", &self.pool)
            .finish()
    }
}

impl OffloadService for ConnectionPool {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        self.try_execute(move || job.run()).map_err(Into::into)
    }
}

/// Gives a connection's admission back however its job ends.
struct ShareGuard(Arc<AtomicUsize>);

impl Drop for ShareGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
