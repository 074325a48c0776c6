//! The server's one pool of password hashing: every argon2id hash and verification (sign-ins,
//! user creation, roster imports, password resets) runs on one of `--max-hashing` worker threads,
//! taken in arrival order.
//!
//! Why a pool of its own: an argon2id hash with the crate's default parameters fills ~19 MiB of
//! memory while it runs. On tokio's blocking pool (up to 512 threads), a room signing in at once
//! held hundreds of those blocks together, and glibc kept what the threads freed: gigabytes at
//! 9:00 on exam day. Here each worker owns one block of argon2 memory, allocated once and reused
//! by every job it runs (`hash_password_into_with_memory`), so hashing memory is workers × block,
//! never requests × block, and nothing is freed for the allocator to hold on to. A sign-in that
//! waits holds only its request.
//!
//! Load shedding: a sign-in that would wait longer than the wait limit (10 s) is refused at once
//! with [`Busy`] (503 `server_busy` with `Retry-After`), judged from the queue ahead of it and the
//! mean time of a job; one that still waited too long (the estimate was wrong) is refused when its
//! turn comes instead of being run late. A waiter that went away (its client disconnected) is
//! skipped. Administration (user creation, imports, resets) waits its turn however long it takes.

use crate::error::{Error, Result};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The longest a sign-in may wait for a worker before it is answered `server_busy` (the contract's
/// 10 seconds).
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The most argon2 memory a stored hash may ask for (64 MiB): a worker's block grows to fit the
/// largest hash it has verified, and a hash asking for more than this is a corrupt record, not a
/// reason to hold gigabytes.
const MAX_BLOCKS: usize = 64 * 1024;

/// The hash of a random password nobody knows, with the same parameters as every real hash: a
/// sign-in for an unknown username is checked against it, through the same pool, so that neither
/// its response time nor its place in the queue tells which usernames exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8nxJmWBJuYXbKgR0QbY7B1O4Y4SdtsOm8VZpIn5gT8Q";

/// A sign-in refused because the pool is too busy: try again after `retry_after` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// Whole seconds, at least 1.
    pub retry_after: u64,
}

impl From<Busy> for Error {
    fn from(busy: Busy) -> Self {
        Error::server_busy(busy.retry_after)
    }
}

/// How a job is let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A sign-in: refused with [`Busy`] if it would wait longer than the wait limit.
    SignIn,
    /// Administration: waits its turn however long.
    Wait,
}

/// One worker's argon2 memory, reused by every job it runs.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    /// The first `blocks` blocks, grown (once, and kept) if this worker never needed as many.
    fn blocks(&mut self, blocks: usize) -> Result<&mut [Block]> {
        if blocks > MAX_BLOCKS {
            return Err(Error::internal(format!(
                "a stored password hash asks for {blocks} KiB of memory, more than {MAX_BLOCKS}"
            )));
        }
        if self.0.len() < blocks {
            self.0.resize(blocks, Block::new());
        }
        Ok(&mut self.0[..blocks])
    }

    /// KiB of argon2 memory this worker holds.
    fn kib(&self) -> usize {
        self.0.len()
    }
}

/// What a worker does with a job: run it with its memory, or (`None`) tell its waiter that it
/// waited too long.
type Run = Box<dyn FnOnce(Option<&mut Memory>, Busy) + Send>;

struct Job {
    enqueued: Instant,
    admission: Admission,
    /// Set when the waiter is gone: nobody wants the result.
    abandoned: Arc<AtomicBool>,
    run: Run,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    running: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    workers: usize,
    wait_limit: Duration,
    /// The mean time of a job in nanoseconds (exponentially weighted); 0 before the first.
    mean_ns: AtomicU64,
    /// KiB of argon2 memory held by all workers, for the metrics.
    memory_kib: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a job queued behind `ahead` others (queued or running) would wait for a worker.
    fn wait_behind(&self, ahead: usize) -> Duration {
        if ahead < self.workers {
            return Duration::ZERO;
        }
        let rounds = (ahead - self.workers + 1) as u64;
        Duration::from_nanos(rounds * self.mean_ns.load(Ordering::Relaxed) / self.workers as u64)
    }

    fn busy(&self, ahead: usize) -> Busy {
        let wait = self.wait_behind(ahead);
        Busy {
            retry_after: wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0),
        }
    }

    fn work(&self) {
        let mut memory = Memory::default();
        loop {
            let job = {
                let mut queue = self.lock();
                loop {
                    if let Some(job) = queue.jobs.pop_front() {
                        queue.running += 1;
                        break job;
                    }
                    if queue.closed {
                        return;
                    }
                    queue = self.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
                }
            };
            let before = memory.kib();
            if job.abandoned.load(Ordering::Acquire) {
                // Its client went away while it waited: nobody wants the answer.
            } else if job.admission == Admission::SignIn && job.enqueued.elapsed() > self.wait_limit
            {
                let ahead = {
                    let queue = self.lock();
                    queue.jobs.len() + queue.running
                };
                (job.run)(None, self.busy(ahead));
            } else {
                let started = Instant::now();
                (job.run)(Some(&mut memory), Busy { retry_after: 1 });
                let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let mean = self.mean_ns.load(Ordering::Relaxed);
                let next = if mean == 0 {
                    took
                } else {
                    mean - mean / 8 + took / 8
                };
                self.mean_ns.store(next, Ordering::Relaxed);
            }
            let grown = memory.kib() - before;
            if grown > 0 {
                self.memory_kib.fetch_add(grown as u64, Ordering::Relaxed);
            }
            self.lock().running -= 1;
        }
    }
}

/// The pool, shared by cloning. Once every clone is dropped, its workers finish the queue and end.
#[derive(Clone)]
pub struct Hashing {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Closes the queue when the last handle of the pool goes (the workers hold `Shared` only).
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

impl Hashing {
    /// A pool of `workers` threads (at least one), refusing sign-ins that would wait longer than
    /// `wait_limit`.
    pub fn new(workers: usize, wait_limit: Duration) -> Self {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            ready: Condvar::new(),
            workers,
            wait_limit,
            mean_ns: AtomicU64::new(0),
            memory_kib: AtomicU64::new(0),
        });
        for i in 0..workers {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("invigil-hash-{i}"))
                .spawn(move || shared.work())
                .expect("a hashing thread starts");
        }
        Self {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// A pool of one worker per CPU with the contract's wait limit (command-line tasks).
    pub fn per_cpu() -> Self {
        Self::new(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            WAIT_LIMIT,
        )
    }

    /// How many workers it has.
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// Jobs waiting for a worker and jobs running, now.
    pub fn load(&self) -> (usize, usize) {
        let queue = self.shared.lock();
        (queue.jobs.len(), queue.running)
    }

    /// KiB of argon2 memory the workers hold (grows to workers × one block, then stays).
    pub fn memory_kib(&self) -> u64 {
        self.shared.memory_kib.load(Ordering::Relaxed)
    }

    /// Runs `job` on a worker with its memory, in arrival order.
    pub async fn run<T: Send + 'static>(
        &self,
        admission: Admission,
        job: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = oneshot::channel::<Result<T, Busy>>();
        let abandoned = Arc::new(AtomicBool::new(false));
        {
            let mut queue = self.shared.lock();
            if admission == Admission::SignIn {
                let ahead = queue.jobs.len() + queue.running;
                if self.shared.wait_behind(ahead) > self.shared.wait_limit {
                    return Err(self.shared.busy(ahead));
                }
            }
            queue.jobs.push_back(Job {
                enqueued: Instant::now(),
                admission,
                abandoned: abandoned.clone(),
                run: Box::new(move |memory, busy| {
                    let _ = tx.send(memory.map(job).ok_or(busy));
                }),
            });
        }
        self.shared.ready.notify_one();
        // If this future is dropped (the client went away), the worker skips the job.
        let _gone = SetOnDrop(abandoned);
        match rx.await {
            Ok(result) => result,
            // The pool closed under it: only at shutdown, when nobody waits for the answer.
            Err(_) => Err(Busy { retry_after: 1 }),
        }
    }

    /// Hashes a new password (administration: waits its turn). A PHC string of argon2id with the
    /// crate's default parameters and a random salt.
    pub async fn hash(&self, password: String) -> Result<String> {
        let salt = SaltString::encode_b64(&super::random_bytes::<16>())
            .map_err(|e| Error::internal(format!("salt: {e}")))?;
        self.run(Admission::Wait, move |memory| {
            hash_with(memory, password.as_bytes(), &salt)
        })
        .await
        .map_err(Error::from)?
    }

    /// Checks a sign-in's password against the account's stored hash, or, with no account,
    /// against a dummy hash (same work, same queue), answering `false`. Refused with 503
    /// `server_busy` when the pool is too busy.
    pub async fn verify(&self, stored: Option<String>, password: String) -> Result<bool> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matched = self
            .run(Admission::SignIn, move |memory| {
                verify_with(memory, &phc, password.as_bytes())
            })
            .await??;
        Ok(matched && known)
    }

    /// Runs one verification so that the mean job time is known before the first sign-in, and
    /// one worker's memory is in place.
    pub async fn warm_up(&self) -> Result<()> {
        self.run(Admission::Wait, |memory| {
            verify_with(memory, DUMMY_HASH, b"warm-up")
        })
        .await??;
        Ok(())
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// argon2id with the crate's default parameters into `memory`: the same PHC string as
/// `Argon2::default().hash_password`.
fn hash_with(memory: &mut Memory, password: &[u8], salt: &SaltString) -> Result<String> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = salt.as_salt();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| Error::internal(format!("salt: {e}")))?;
    let blocks = memory.blocks(params.block_count())?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *blocks)?)
    })
    .map_err(|e| Error::internal(format!("hashing a password failed: {e}")))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| Error::internal(format!("hash parameters: {e}")))?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc` (any argon2 variant, version and parameters),
/// computed into `memory`; the comparison takes the same time whatever differs.
fn verify_with(memory: &mut Memory, phc: &str, password: &[u8]) -> Result<bool> {
    let stored = |e: argon2::password_hash::Error| Error::internal(format!("stored hash: {e}"));
    let parsed = PasswordHash::new(phc).map_err(stored)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(stored)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| Error::internal(format!("stored hash: {e}")))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(stored)?;
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return Err(Error::internal("stored hash: no salt or no hash"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(stored)?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let blocks = memory.blocks(params.block_count())?;
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *blocks)?)
    })
    .map_err(stored)?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    use std::sync::mpsc;

    #[tokio::test]
    async fn a_hash_is_argon2id_with_default_parameters_and_verifies_only_its_own_password() {
        let pool = Hashing::new(1, WAIT_LIMIT);
        let hash = pool.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        // The crate's own verifier agrees: the PHC string is standard.
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            pool.verify(Some(hash.clone()), "correct horse".into())
                .await
                .unwrap()
        );
        assert!(!pool.verify(Some(hash), "wrong".into()).await.unwrap());
        assert!(!pool.verify(None, "anything".into()).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_made_by_the_crate_verify_through_the_pool() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let by_crate = Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        let mut memory = Memory::default();
        assert_eq!(hash_with(&mut memory, b"pw", &salt).unwrap(), by_crate);
        // Other parameters too (a record hashed with a cheaper setting).
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify_with(&mut memory, &cheap, b"pw").unwrap());
        assert!(!verify_with(&mut memory, &cheap, b"px").unwrap());
        assert!(verify_with(&mut memory, "not a hash", b"pw").is_err());
    }

    #[tokio::test]
    async fn workers_reuse_one_block_each_however_many_jobs_they_run() {
        let pool = Hashing::new(2, WAIT_LIMIT);
        let jobs: Vec<_> = (0..8)
            .map(|i| pool.verify(None, format!("guess {i}")))
            .collect();
        for result in futures_util::future::join_all(jobs).await {
            assert!(!result.unwrap());
        }
        let one_block = Params::default().block_count() as u64;
        assert!(
            pool.memory_kib() <= 2 * one_block,
            "{} KiB",
            pool.memory_kib()
        );
        assert!(pool.memory_kib() >= one_block);
    }

    /// A job that holds its worker until told to go on, to fill the pool deterministically.
    async fn hold(pool: &Hashing) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (go, wait) = mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let pool = pool.clone();
        let handle = tokio::spawn(async move {
            let _ = pool
                .run(Admission::Wait, move |_| {
                    started_tx.send(()).unwrap();
                    let _ = wait.recv();
                })
                .await;
        });
        tokio::time::timeout(Duration::from_secs(10), started_rx)
            .await
            .expect("the holding job starts")
            .unwrap();
        (go, handle)
    }

    #[tokio::test]
    async fn a_sign_in_that_would_wait_past_the_limit_is_refused_with_a_retry_after() {
        let pool = Hashing::new(1, Duration::from_secs(10));
        // Each job is known to take 4 s.
        pool.shared.mean_ns.store(4_000_000_000, Ordering::Relaxed);
        let (go, held) = hold(&pool).await;
        // One running: a sign-in now waits one job (4 s), two queued sign-ins 8 s and 12 s.
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(Admission::SignIn, |_| ()).await })
            })
            .collect();
        while pool.load().0 < 2 {
            tokio::task::yield_now().await;
        }
        let refused = pool.run(Admission::SignIn, |_| ()).await;
        assert_eq!(refused, Err(Busy { retry_after: 12 }));
        // Administration is never refused: it waits.
        let admin = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(Admission::Wait, |_| "done").await })
        };
        while pool.load().0 < 3 {
            tokio::task::yield_now().await;
        }
        go.send(()).unwrap();
        held.await.unwrap();
        for q in queued {
            assert_eq!(q.await.unwrap(), Ok(()));
        }
        assert_eq!(admin.await.unwrap(), Ok("done"));
    }

    #[tokio::test]
    async fn a_sign_in_that_waited_past_the_limit_is_refused_when_its_turn_comes() {
        let pool = Hashing::new(1, Duration::ZERO);
        let (go, held) = hold(&pool).await;
        let late = {
            let pool = pool.clone();
            // Nothing is known of the mean yet, so it is let in; by its turn it has waited.
            tokio::spawn(async move { pool.run(Admission::SignIn, |_| "ran").await })
        };
        while pool.load().0 < 1 {
            tokio::task::yield_now().await;
        }
        go.send(()).unwrap();
        held.await.unwrap();
        assert!(matches!(late.await.unwrap(), Err(Busy { .. })));
    }

    #[tokio::test]
    async fn jobs_run_in_arrival_order_and_those_whose_waiter_left_are_skipped() {
        let pool = Hashing::new(1, WAIT_LIMIT);
        let (go, held) = hold(&pool).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..5 {
            let (order, handle) = (order.clone(), pool.clone());
            waiting.push(tokio::spawn(async move {
                handle
                    .run(Admission::Wait, move |_| order.lock().unwrap().push(i))
                    .await
            }));
            while pool.load().0 < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        // The third waiter's client goes away.
        waiting[2].abort();
        let _ = (&mut waiting[2]).await;
        go.send(()).unwrap();
        held.await.unwrap();
        for (i, w) in waiting.into_iter().enumerate() {
            if i != 2 {
                assert_eq!(w.await.unwrap(), Ok(()));
            }
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 3, 4]);
    }
}
