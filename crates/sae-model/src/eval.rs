//! Evaluating an SAE on a store's held-out split, streaming batch by batch, plus ground-truth recovery.

use std::path::Path;

use candle_core::{DType, Tensor};
use sae_store::{Hierarchy, Split, Store};
use serde::Serialize;

use crate::absorption::{AbsorptionMetrics, AbsorptionStats};
use crate::cosine::{matrix, max_cosines};
use crate::metrics::{mmcs, recovered_frac, FiringStats, ReconStats};
use crate::prefix::{PrefixMetrics, PrefixStats};
use crate::weights::WeightFile;
use crate::{Sae, SaeError};

/// Name of the tensor holding the true features in a ground-truth file.
pub const GROUND_TRUTH_TENSOR: &str = "features";

/// Metrics of one evaluation (see [`crate::metrics`] for the exact definitions).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct EvalMetrics {
    /// Mean squared error per element.
    pub mse: f64,
    /// Fraction of variance unexplained (against the eval set's per-dimension mean).
    pub fvu: f64,
    /// Mean nonzero latents per row.
    pub l0: f64,
    /// Fraction of latents that never fire on the eval set.
    pub dead_frac: f64,
    /// Fraction of latents firing on more than 10% of the eval rows.
    pub dense_frac: f64,
    /// Mean over rows of ||x_hat|| / ||x||.
    pub l2_ratio: f64,
    /// Mean over true features of the best decoder cosine (with ground truth only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mmcs: Option<f64>,
    /// Fraction of true features with best decoder cosine > 0.9 (with ground truth only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_frac: Option<f64>,
}

/// An evaluation's metrics with, for a Matryoshka SAE, those of each nested prefix, and on a store
/// with hierarchical features the absorption score (`eval.json` and `sae eval --json`: the
/// metrics' keys plus `prefixes` and `absorption`).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// The whole SAE's metrics.
    #[serde(flatten)]
    pub metrics: EvalMetrics,
    /// Each prefix's metrics, innermost first; the last is the full width (Matryoshka only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<PrefixMetrics>>,
    /// Feature absorption, on a store with hierarchical features (`hierarchy.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absorption: Option<AbsorptionMetrics>,
}

/// Streams rows through an SAE and accumulates every metric.
pub struct Evaluator<'a> {
    sae: &'a Sae,
    recon: ReconStats,
    firing: FiringStats,
    prefixes: Option<PrefixStats>,
    absorption: Option<AbsorptionStats>,
}

impl<'a> Evaluator<'a> {
    /// Rows per forward pass: keeps the dense latents of a batch near 16 MB.
    pub fn batch_rows(sae: &Sae) -> usize {
        ((1usize << 22) / sae.d_sae()).clamp(64, 4096)
    }

    /// An empty evaluator (with per-prefix statistics for a Matryoshka SAE, whose widths
    /// [`Sae::validate`] has checked).
    pub fn new(sae: &'a Sae) -> Evaluator<'a> {
        let widths = sae.cfg.matryoshka_widths().ok().flatten();
        Evaluator {
            sae,
            recon: ReconStats::new(sae.d_out()),
            firing: FiringStats::new(sae.d_sae()),
            prefixes: widths.map(|w| PrefixStats::new(w, sae.d_out())),
            absorption: None,
        }
    }

    /// Also scores feature absorption over the rows to come (the held-out rows `stats` lists).
    pub fn with_absorption(mut self, stats: AbsorptionStats) -> Evaluator<'a> {
        self.absorption = Some(stats);
        self
    }

    /// Adds rows x: [n, d_in] row-major, in batches of [`Evaluator::batch_rows`]; the output
    /// is compared with x itself, so a transcoder is refused ([`Evaluator::push_pair`]).
    pub fn push(&mut self, x: &[f32]) -> Result<(), SaeError> {
        if self.sae.cfg.is_transcoder() {
            return Err(SaeError::NeedsTarget {
                kind: self.sae.kind(),
            });
        }
        self.push_pair(x, x)
    }

    /// Adds rows x: [n, d_in] with the outputs they should give, y: [n, d_out] (x itself for
    /// an autoencoder; the target hook's rows for a transcoder).
    pub fn push_pair(&mut self, x: &[f32], y: &[f32]) -> Result<(), SaeError> {
        let (d, d_out) = (self.sae.d_in(), self.sae.d_out());
        if !x.len().is_multiple_of(d) || y.len() / d_out * d != x.len() {
            return Err(SaeError::Invalid(format!(
                "{} input values and {} target values are not whole rows of widths {d} and {d_out}",
                x.len(),
                y.len()
            )));
        }
        let batch = Evaluator::batch_rows(self.sae);
        for (xb, yb) in x.chunks(batch * d).zip(y.chunks(batch * d_out)) {
            let n = xb.len() / d;
            let xt = matrix(xb.to_vec(), n, d)?;
            let (f, out) = self.sae.forward(&xt)?;
            let out = out.flatten_all()?.to_vec1::<f32>()?;
            self.recon.push(yb, &out);
            let counts = f.ne(0f32)?.to_dtype(DType::F32)?.sum(0)?.to_vec1::<f32>()?;
            let counts: Vec<u64> = counts.into_iter().map(|c| c as u64).collect();
            self.firing.add_counts(&counts, n as u64);
            if let Some(p) = &mut self.prefixes {
                p.push(self.sae, &xt, &f, yb)?;
            }
            if let Some(a) = &mut self.absorption {
                a.push(&f.flatten_all()?.to_vec1::<f32>()?, self.sae.d_sae())?;
            }
        }
        Ok(())
    }

    /// Each nested prefix's metrics so far (Matryoshka SAEs only).
    pub fn prefix_metrics(&self) -> Option<Vec<PrefixMetrics>> {
        let p = self.prefixes.as_ref()?;
        Some(p.finish(&self.firing.counts, self.firing.rows))
    }

    /// The metrics, the prefixes' ([`Evaluator::finish`], [`Evaluator::prefix_metrics`]) and the
    /// absorption score when [`Evaluator::with_absorption`] asked for it.
    pub fn report(&self, features: Option<&Tensor>) -> Result<EvalReport, SaeError> {
        Ok(EvalReport {
            metrics: self.finish(features)?,
            prefixes: self.prefix_metrics(),
            absorption: match &self.absorption {
                Some(a) => Some(a.finish()?),
                None => None,
            },
        })
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.recon.rows()
    }

    /// Firing counts so far.
    pub fn firing(&self) -> &FiringStats {
        &self.firing
    }

    /// The metrics, with ground-truth recovery when `features` [n_true, d_out] is given (the
    /// decoder rows against them; d_out = d_in for an autoencoder).
    pub fn finish(&self, features: Option<&Tensor>) -> Result<EvalMetrics, SaeError> {
        let (mmcs_v, recovered) = match features {
            Some(t) => {
                let best = max_cosines(t, &self.sae.w_dec)?;
                (Some(mmcs(&best)), Some(recovered_frac(&best)))
            }
            None => (None, None),
        };
        Ok(EvalMetrics {
            mse: self.recon.mse(),
            fvu: self.recon.fvu(),
            l0: self.firing.l0(),
            dead_frac: self.firing.dead_frac(),
            dense_frac: self.firing.dense_frac(),
            l2_ratio: self.recon.l2_ratio(),
            mmcs: mmcs_v,
            recovered_frac: recovered,
        })
    }
}

/// Reads ground-truth features `features` [n, d] from a safetensors file and checks d == `d_in`.
pub fn load_ground_truth(path: &Path, d_in: usize) -> Result<Tensor, SaeError> {
    let file = WeightFile::read(path)?;
    let shape = file.shape(GROUND_TRUTH_TENSOR)?;
    match shape.as_slice() {
        [n, d] if *d == d_in => file.tensor(GROUND_TRUTH_TENSOR, &[*n, d_in]),
        [_, d] => Err(SaeError::GroundTruthWidth {
            path: path.to_path_buf(),
            expected: d_in,
            found: *d,
        }),
        _ => Err(SaeError::BadShape {
            path: path.to_path_buf(),
            name: GROUND_TRUTH_TENSOR.into(),
            expected: vec![0, d_in],
            found: shape,
        }),
    }
}

/// Evaluates `sae` on the held-out split of `store`, one shard and one batch at a time.
/// `ground_truth`: a safetensors file with `features` [n_true, d_in] for mmcs / recovered_frac
/// (for a transcoder, [`evaluate_with_target`]: [n_true, d_out], the output directions).
pub fn evaluate(
    sae: &Sae,
    store: &Store,
    ground_truth: Option<&Path>,
) -> Result<EvalMetrics, SaeError> {
    evaluate_with_target(sae, store, None, ground_truth)
}

/// Checks the stores against the SAE and each other.
fn check_stores(sae: &Sae, store: &Store, target: Option<&Store>) -> Result<(), SaeError> {
    if store.d() != sae.d_in() {
        return Err(SaeError::StoreWidth {
            store: store.dir().to_path_buf(),
            store_d: store.d(),
            sae_d_in: sae.d_in(),
        });
    }
    if store.split_rows(Split::Eval) == 0 {
        return Err(SaeError::Store(sae_store::StoreError::EmptySplit {
            dir: store.dir().to_path_buf(),
            split: "eval",
        }));
    }
    let Some(t) = target else {
        return match sae.cfg.is_transcoder() {
            true => Err(SaeError::NeedsTarget { kind: sae.kind() }),
            false => Ok(()),
        };
    };
    let bad = |msg: String| SaeError::BadTarget {
        store: t.dir().to_path_buf(),
        msg,
    };
    if t.d() != sae.d_out() {
        return Err(bad(format!(
            "rows of width {}, but the SAE's output has width {}",
            t.d(),
            sae.d_out()
        )));
    }
    if t.split_range(Split::Eval) != store.split_range(Split::Eval) {
        return Err(bad(format!(
            "held-out rows {:?}, but the input store's are {:?}: the stores are not row-aligned",
            t.split_range(Split::Eval),
            store.split_range(Split::Eval)
        )));
    }
    Ok(())
}

/// Evaluates `sae` on the held-out split of `store`, comparing its output with the same rows of
/// `target` (a transcoder's target hook; row-aligned with `store`, as the stores of one harvest
/// are) or, without `target`, with the input rows themselves.
pub fn evaluate_with_target(
    sae: &Sae,
    store: &Store,
    target: Option<&Store>,
    ground_truth: Option<&Path>,
) -> Result<EvalMetrics, SaeError> {
    Ok(evaluate_report(sae, store, target, ground_truth)?.metrics)
}

/// [`evaluate_with_target`] with the per-prefix metrics of a Matryoshka SAE and, when the store
/// has a `hierarchy.json` and ground truth is given (autoencoders only), the absorption score.
pub fn evaluate_report(
    sae: &Sae,
    store: &Store,
    target: Option<&Store>,
    ground_truth: Option<&Path>,
) -> Result<EvalReport, SaeError> {
    check_stores(sae, store, target)?;
    let features = match ground_truth {
        // A transcoder's decoder rows live in the output space: its truth is the target's.
        Some(p) => Some(load_ground_truth(p, sae.d_out())?),
        None => None,
    };
    let mut ev = Evaluator::new(sae);
    if let (Some(t), None, Some(h)) = (&features, target, Hierarchy::read(store.dir())?) {
        let decoder = sae.w_dec.flatten_all()?.to_vec1::<f32>()?;
        let truth = t.flatten_all()?.to_vec1::<f32>()?;
        ev = ev.with_absorption(AbsorptionStats::new(&truth, &decoder, sae.d_in(), h)?);
    }
    let Some(target) = target else {
        for chunk in store.chunks(Split::Eval) {
            ev.push(&chunk?.acts)?;
        }
        return ev.report(features.as_ref());
    };
    let d_out = sae.d_out();
    let mut targets = target.chunks(Split::Eval);
    let mut pending: Vec<f32> = Vec::new();
    for chunk in store.chunks(Split::Eval) {
        let chunk = chunk?;
        while pending.len() < chunk.rows * d_out {
            match targets.next() {
                Some(t) => pending.extend_from_slice(&t?.acts),
                None => break,
            }
        }
        let n = (chunk.rows * d_out).min(pending.len());
        ev.push_pair(&chunk.acts, &pending[..n])?;
        pending.drain(..n);
    }
    ev.report(features.as_ref())
}
