//! Giving memory that bursts freed back to the system.
//!
//! A burst of requests (a room signing in, a wave of bad sign-ins) allocates its buffers on every
//! runtime thread and frees them when its connections close, but glibc keeps the freed pages in
//! its per-thread arenas: after the benchmark's hostile wave the heap in use was back within
//! 0.4 MB of where it was, yet the resident set stayed about 11 MB higher (BENCHMARKS.md, "Sign-in
//! burst"). `malloc_trim(0)` hands every whole free page of every arena back. It is called only
//! when the allocator holds at least [`FREED`] more free memory than after its last call, so a
//! server whose memory does not move does nothing.
//!
//! This is the workspace's only `unsafe` code: two calls into glibc that take and return plain
//! values.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the allocator's free memory is looked at.
const EVERY: Duration = Duration::from_secs(5);
/// How much more free memory than after the last trim makes a trim worth it.
const FREED: usize = 1 << 20;

/// Until `shutdown`: every [`EVERY`], trims the allocator's arenas if they hold at least
/// [`FREED`] more free memory than after the last trim.
pub async fn give_back_freed(shutdown: CancellationToken) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settled = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        // Both calls walk the arenas under their locks: off the runtime's threads.
        let held = tokio::task::spawn_blocking(move || {
            let free = glibc::free_bytes()?;
            match next(settled, free) {
                Next::Keep(settled) => Some(settled),
                Next::Trim => {
                    let started = std::time::Instant::now();
                    glibc::trim();
                    tracing::debug!(
                        free_kib = free / 1024,
                        took_us = started.elapsed().as_micros() as u64,
                        "gave the allocator's free pages back"
                    );
                    glibc::free_bytes()
                }
            }
        })
        .await;
        match held {
            Ok(Some(free)) => settled = Some(free),
            // Not glibc: nothing to give back this way.
            Ok(None) => return,
            Err(_) => {}
        }
    }
}

/// What to do on a tick.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Nothing was freed worth giving back; this is the free memory to measure from next time.
    Keep(usize),
    /// Trim, then measure from what is free after it.
    Trim,
}

/// `settled` is what the arenas held free after the last trim, or the least seen since (`None`
/// before the first look), `free` what they hold now: freed memory is what comes on top of
/// `settled`. Following it down keeps memory that was reused and freed again from hiding.
fn next(settled: Option<usize>, free: usize) -> Next {
    match settled {
        Some(settled) if free >= settled.saturating_add(FREED) => Next::Trim,
        Some(settled) => Next::Keep(settled.min(free)),
        None => Next::Keep(free),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    /// Bytes the allocator holds free in its arenas (whether or not their pages were given back).
    pub(super) fn free_bytes() -> Option<usize> {
        // SAFETY: `mallinfo2` takes nothing and returns a plain struct by value; it only reads
        // the allocator's state under its locks (glibc 2.33 and later, like this build's).
        let info = unsafe { libc::mallinfo2() };
        Some(info.fordblks)
    }

    /// Gives every whole free page of every arena back to the system.
    pub(super) fn trim() {
        // SAFETY: `malloc_trim` takes a size and returns an int; it works under the allocator's
        // own locks and frees nothing that is in use.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub(super) fn free_bytes() -> Option<usize> {
        None
    }

    pub(super) fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_memory_freed_since_the_last_trim_is_worth_a_trim() {
        // The first look only measures: what is free at start was never in use here.
        assert_eq!(next(None, 50 * FREED), Next::Keep(50 * FREED));
        assert_eq!(
            next(Some(10 * FREED), 10 * FREED + FREED - 1),
            Next::Keep(10 * FREED)
        );
        assert_eq!(next(Some(10 * FREED), 11 * FREED), Next::Trim);
        // Free memory reused lowers the mark, so that freeing it again counts.
        assert_eq!(next(Some(10 * FREED), 4 * FREED), Next::Keep(4 * FREED));
        assert_eq!(next(Some(4 * FREED), 5 * FREED), Next::Trim);
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_counts_freed_blocks_as_free_and_trims_without_harm() {
        // Every other 4 KiB block freed: 8 MiB of holes between live blocks, which no free()
        // can hand back by itself (other tests' threads may reuse some of them).
        let mut blocks: Vec<Option<Vec<u8>>> = (0..4096).map(|_| Some(vec![1u8; 4096])).collect();
        for block in blocks.iter_mut().step_by(2) {
            *block = None;
        }
        let free = glibc::free_bytes().expect("glibc");
        assert!(free >= 4 << 20, "{free} bytes free");
        glibc::trim();
        assert!(
            blocks
                .iter()
                .skip(1)
                .step_by(2)
                .flatten()
                .all(|b| b.iter().all(|&x| x == 1))
        );
    }
}
