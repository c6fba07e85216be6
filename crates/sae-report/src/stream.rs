//! Streaming a store through a group of units: batches in row order, one shard in memory at a
//! time; SAE units (active = f > 0) in one pass, dense columns (active = value > fraction x max)
//! in two. Groups run as independent tasks on worker threads, each reading the store itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use candle_core::{Device, Tensor};
use sae_model::Sae;
use sae_store::{Split, Store};

use crate::analyzer::{AnalysisSettings, GroupAnalyzer, UnitStats};
use crate::window::UnitBatch;
use crate::ReportError;

/// A batch of raw store rows: acts [n, d].
pub(crate) struct RawBatch<'a> {
    pub start_row: u64,
    pub acts: &'a [f32],
    pub tokens: &'a [u32],
    pub docs: Option<&'a [u32]>,
    pub positions: Option<&'a [u32]>,
}

impl<'a> RawBatch<'a> {
    pub fn with_units(&self, acts: &'a [f32], units: usize) -> UnitBatch<'a> {
        UnitBatch {
            start_row: self.start_row,
            units,
            acts,
            token_ids: self.tokens,
            doc_ids: self.docs,
            positions: self.positions,
        }
    }

    pub fn rows(&self) -> usize {
        self.tokens.len()
    }
}

pub(crate) fn rows_used(store: &Store, max_rows: Option<u64>) -> u64 {
    let rows = store.split_rows(Split::All);
    max_rows.map_or(rows, |m| m.min(rows))
}

/// Streams the first `limit` rows of `store` in batches of `batch_rows`, one shard in memory at a time.
pub(crate) fn stream(
    store: &Store,
    limit: u64,
    batch_rows: usize,
    mut f: impl FnMut(&RawBatch) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let d = store.d();
    let mut seen = 0u64;
    for chunk in store.chunks(Split::All) {
        if seen >= limit {
            break;
        }
        let chunk = chunk?;
        let rows = chunk.rows.min((limit - seen) as usize);
        let tokens = chunk
            .token_ids
            .as_deref()
            .ok_or_else(|| ReportError::NoTokenIds {
                store: store.dir().to_path_buf(),
            })?;
        let mut lo = 0;
        while lo < rows {
            let hi = (lo + batch_rows.max(1)).min(rows);
            f(&RawBatch {
                start_row: chunk.start_row + lo as u64,
                acts: &chunk.acts[lo * d..hi * d],
                tokens: &tokens[lo..hi],
                docs: chunk.doc_ids.as_deref().map(|v| &v[lo..hi]),
                positions: chunk.positions.as_deref().map(|v| &v[lo..hi]),
            })?;
            lo = hi;
        }
        seen += rows as u64;
    }
    Ok(())
}

/// Encodes rows with the SAE: x [n, d_in] -> f [n, d_sae] (dense, row-major).
pub fn encode_rows(sae: &Sae, acts: &[f32], n: usize) -> Result<Vec<f32>, ReportError> {
    let x = Tensor::from_slice(acts, (n, sae.cfg.d_in), &Device::Cpu)?;
    Ok(sae.encode(&x)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Rows x [n, d] onto directions [m, d] (row-major): [n, m].
pub(crate) fn project(acts: &[f32], d: usize, dirs: &Tensor) -> Result<Vec<f32>, ReportError> {
    let x = Tensor::from_slice(acts, (acts.len() / d, d), &Device::Cpu)?;
    Ok(x.matmul(&dirs.t()?)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Work done so far by every task, shared across threads.
#[derive(Default)]
pub(crate) struct Ticker(AtomicU64);

impl Ticker {
    pub fn tick(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a group's units are read off a batch of store rows.
pub(crate) enum Units<'a> {
    /// Latents of an SAE: one pass, active = f > 0.
    Sae(&'a Sae),
    /// The store's own columns: two passes, active = value > fraction x max.
    Columns,
    /// Projections onto unit directions [m, d]: two passes like columns.
    Directions(&'a Tensor),
}

/// Analyses the first `limit` rows of `store` as the units `how` reads; returns the statistics
/// and the number of rows analysed.
pub(crate) fn analyze(
    store: &Store,
    limit: u64,
    how: &Units,
    batch_rows: usize,
    dense_fraction: f64,
    settings: AnalysisSettings,
    ticker: &Ticker,
) -> Result<(Vec<UnitStats>, u64), ReportError> {
    let d = store.d();
    let read = |b: &RawBatch| -> Result<Vec<f32>, ReportError> {
        match how {
            Units::Sae(sae) => encode_rows(sae, b.acts, b.rows()),
            Units::Columns => Ok(b.acts.to_vec()),
            Units::Directions(dirs) => project(b.acts, d, dirs),
        }
    };
    let units = match how {
        Units::Sae(sae) => sae.cfg.d_sae,
        Units::Columns => d,
        Units::Directions(dirs) => dirs.dims2()?.0,
    };
    let thresholds = if let Units::Sae(_) = how {
        vec![0.0; units]
    } else {
        let mut max = vec![f32::NEG_INFINITY; units];
        stream(store, limit, batch_rows, |b| {
            for row in read(b)?.chunks_exact(units) {
                for (m, &v) in max.iter_mut().zip(row) {
                    *m = m.max(v);
                }
            }
            ticker.tick(b.rows() as u64);
            Ok(())
        })?;
        let fraction = dense_fraction as f32;
        max.iter().map(|&m| (fraction * m).max(0.0)).collect()
    };
    let mut an = GroupAnalyzer::new(thresholds, settings);
    stream(store, limit, batch_rows, |b| {
        let acts = read(b)?;
        an.push(&b.with_units(&acts, units));
        ticker.tick(b.rows() as u64);
        Ok(())
    })?;
    let rows = an.rows();
    Ok((an.finish(), rows))
}

/// One unit of parallel work.
pub(crate) type Task<'a, T> = Box<dyn FnOnce() -> Result<T, ReportError> + Send + 'a>;

/// Runs `(cost, task)` pairs on up to `threads` worker threads, the costliest first as workers free
/// up, calling `poll` about every 50 ms meanwhile; results in submission order, the first error wins.
pub(crate) fn run_tasks<T: Send>(
    tasks: Vec<(u64, Task<'_, T>)>,
    threads: usize,
    poll: &mut dyn FnMut(),
) -> Result<Vec<T>, ReportError> {
    let n = tasks.len();
    let mut order: Vec<(usize, (u64, Task<'_, T>))> = tasks.into_iter().enumerate().collect();
    order.sort_by_key(|(i, (c, _))| (std::cmp::Reverse(*c), *i));
    let queue = Mutex::new(
        order
            .into_iter()
            .map(|(i, (_, t))| (i, t))
            .collect::<Vec<_>>(),
    );
    let results: Mutex<Vec<Option<Result<T, ReportError>>>> =
        Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, n.max(1)))
            .map(|_| {
                s.spawn(|| loop {
                    let next = {
                        let mut q = queue.lock().expect("task queue");
                        (!q.is_empty()).then(|| q.remove(0))
                    };
                    let Some((i, task)) = next else { break };
                    let r = task();
                    results.lock().expect("task results")[i] = Some(r);
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            poll();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    poll();
    let results = results.into_inner().expect("task results");
    results
        .into_iter()
        .map(|r| r.expect("every task ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(order: &Mutex<Vec<usize>>) -> Vec<(u64, Task<'_, usize>)> {
        (0..5usize)
            .map(|i| {
                let task = Box::new(move || {
                    order.lock().unwrap().push(i);
                    if i == 3 {
                        Err(ReportError::NoUntrainedSae)
                    } else {
                        Ok(i * 10)
                    }
                }) as Task<usize>;
                ([1, 5, 2, 0, 9][i], task)
            })
            .collect()
    }

    #[test]
    fn costliest_first_results_in_submission_order_and_errors_surface() {
        // One thread: the run order is by cost (9, 5, 2, 1, 0 -> tasks 4, 1, 2, 0, 3).
        let order = Mutex::new(vec![]);
        let r = run_tasks(tasks(&order), 1, &mut || {});
        assert!(matches!(r, Err(ReportError::NoUntrainedSae)));
        assert_eq!(*order.lock().unwrap(), vec![4, 1, 2, 0, 3]);
        let order = Mutex::new(vec![]);
        let mut ok = tasks(&order);
        drop(ok.remove(3));
        let mut polls = 0;
        let r = run_tasks(ok, 2, &mut || polls += 1).unwrap();
        assert_eq!(r, vec![0, 10, 20, 40]);
        assert!(polls >= 1);
    }
}
