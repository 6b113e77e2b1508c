//! Data parallelism for the engine: maps over independent items whose results
//! come back in index order, so that whoever folds them does so in one fixed
//! order and every result is the same for any number of threads.
//!
//! Natively the items run on rayon's pool (work stealing, so a map inside a
//! map — modules scored in parallel, each over parallel batches — neither
//! oversubscribes nor deadlocks). In wasm, and with one thread, they run in
//! turn on the calling thread. The CLI sets the thread count once
//! ([`set_threads`]); the engine never reads a command line or environment.

use crate::error::{Error, Result};

/// Sets the threads of every later map: `0` = rayon's default (`RAYON_NUM_THREADS`,
/// else every core). Once per process, before the first map; wasm has one thread.
pub fn set_threads(n: usize) -> Result<()> {
    imp::set_threads(n)
}

/// The threads a map started here would use.
pub fn threads() -> usize {
    imp::threads()
}

/// Runs `f` with maps on `n` threads (its own pool), whatever [`set_threads`]
/// said: for tests and benchmarks that compare thread counts in one process.
pub fn with_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    imp::with_threads(n, f)
}

/// `f(0), …, f(n − 1)`, in index order.
pub fn map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if n <= 1 || threads() == 1 {
        return (0..n).map(f).collect();
    }
    imp::map(n, f)
}

/// `f(0), …, f(n − 1)`, then `after(i)` on this thread for each result in
/// index order (progress, cancelling). With one thread (the page) `after(i)`
/// follows item `i` at once, as in a plain loop; with more, all items run first
/// (waves of a few would leave threads idle at each wave's end: 5 classes on
/// 2 threads took 3 rounds). The first error, in index order, is returned.
pub fn map_then<T: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T> + Sync + Send,
    mut after: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<T>> {
    let wave = if threads() == 1 { 1 } else { n.max(1) };
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let first = out.len();
        for (i, r) in map(wave.min(n - first), |i| f(first + i)).into_iter().enumerate() {
            out.push(r?);
            after(first + i)?;
        }
    }
    Ok(out)
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use rayon::prelude::*;

    use super::*;

    pub fn set_threads(n: usize) -> Result<()> {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| Error::invalid(format!("cannot start {n} threads: {e}")))
    }

    pub fn threads() -> usize {
        rayon::current_num_threads()
    }

    pub fn with_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| Error::invalid(format!("cannot start {n} threads: {e}")))?;
        Ok(pool.install(f))
    }

    pub fn map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        // One item per task: items are coarse (a span of batches, a module), and stealing balances uneven ones.
        (0..n).into_par_iter().with_max_len(1).map(f).collect()
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;

    pub fn set_threads(n: usize) -> Result<()> {
        if n > 1 { Err(Error::invalid("the page runs on one thread")) } else { Ok(()) }
    }

    pub fn threads() -> usize {
        1
    }

    pub fn with_threads<R: Send>(_: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
        Ok(f())
    }

    pub fn map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        (0..n).map(f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_index_order_on_any_thread_count() {
        for t in [1, 2, 3] {
            let v = with_threads(t, || map(100, |i| i * i)).unwrap();
            assert_eq!(v, (0..100).map(|i| i * i).collect::<Vec<_>>());
            assert_eq!(with_threads(t, threads).unwrap(), if cfg!(target_arch = "wasm32") { 1 } else { t });
        }
    }
}
