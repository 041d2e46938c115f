//! Parallel decode where the awaiting task helps.
//!
//! A cold read used to hand every chunk to rayon and wait: on a busy machine the rayon
//! workers (asleep between reads) can take several milliseconds to be scheduled, and that
//! wake-up, not the decode, made the slow tail of cold reads (p99 5–30 ms for a ~1 ms median).
//! Here rayon workers and the calling task claim items from one counter: if the workers are
//! late, the caller decodes everything itself and never waits for them; if they are prompt,
//! the work is shared. The caller helps only up to a budget, so a very large read does not hold
//! an async worker thread for long.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::error::{Result, StoreError};

struct Job<I, T, F> {
    items: Vec<I>,
    f: F,
    next: AtomicUsize,
    left: AtomicUsize,
    out: Mutex<Vec<Option<Result<T>>>>,
    done: tokio::sync::Notify,
}

impl<I, T, F> Job<I, T, F>
where
    F: Fn(&I) -> Result<T>,
{
    /// Claims and runs items until none is left or `budget` items were run here.
    fn work(&self, budget: usize) {
        for _ in 0..budget {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            let Some(item) = self.items.get(i) else {
                return;
            };
            // A panicking decoder must not leave the caller waiting forever.
            let r = catch_unwind(AssertUnwindSafe(|| (self.f)(item)))
                .unwrap_or_else(|_| Err(StoreError::internal("a decode worker panicked")));
            self.out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.done.notify_one();
            }
        }
    }
}

/// Runs `f` on every item, on rayon and on the calling task (at most `caller_budget` items
/// here), and returns the results in item order; the first error in item order wins.
pub(crate) async fn map_helping<I, T, F>(
    items: Vec<I>,
    caller_budget: usize,
    f: F,
) -> Result<Vec<T>>
where
    I: Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(&I) -> Result<T> + Send + Sync + 'static,
{
    let n = items.len();
    let job = Arc::new(Job {
        out: Mutex::new((0..n).map(|_| None).collect()),
        items,
        f,
        next: AtomicUsize::new(0),
        left: AtomicUsize::new(n),
        done: tokio::sync::Notify::new(),
    });
    let helpers = rayon::current_num_threads().min(n.saturating_sub(1));
    for _ in 0..helpers {
        let job = Arc::clone(&job);
        rayon::spawn(move || job.work(usize::MAX));
    }
    job.work(caller_budget.max(1));
    // Wait for items claimed by helpers (or left past the budget). `notify_one` keeps a
    // permit when nobody waits yet, so the wake-up cannot be lost.
    while job.left.load(Ordering::Acquire) != 0 {
        job.done.notified().await;
    }
    let out = std::mem::take(&mut *job.out.lock().unwrap_or_else(|p| p.into_inner()));
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::internal("an item was not decoded"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_in_order_whoever_runs_them() {
        for budget in [0usize, 1, 3, 1000] {
            let items: Vec<u64> = (0..200).collect();
            let got = map_helping(items, budget, |&x| Ok(x * x)).await.unwrap();
            assert_eq!(got, (0..200u64).map(|x| x * x).collect::<Vec<_>>());
        }
        let none: Vec<u64> = map_helping(Vec::<u64>::new(), 4, |&x| Ok(x)).await.unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_error_in_item_order_and_panics_are_errors() {
        let items: Vec<u32> = (0..64).collect();
        let err = map_helping(items, 8, |&x| {
            if x == 10 || x == 50 {
                Err(StoreError::internal(format!("bad {x}")))
            } else {
                Ok(x)
            }
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("bad 10"), "{err}");
        let items: Vec<u32> = (0..16).collect();
        let err = map_helping(items, 2, |&x| {
            assert!(x != 7, "boom");
            Ok(x)
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }
}
