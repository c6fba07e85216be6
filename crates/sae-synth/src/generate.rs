//! Generating a synthetic store: unit-norm true features, sparse samples x = sum_i m_i f_i over the
//! firing features (m_i ~ U[0, 1)), written through the store writer plus `ground_truth.safetensors`.
//!
//! Determinism: the features come from one seeded stream; the rows of shard b come from their own
//! stream seeded by (seed, b), so the output depends only on the settings (and shards can be
//! regenerated independently, which is how `resume` continues an interrupted run).

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use sae_store::{Hierarchy, Manifest, RowBatch, StoreSpec, StoreWriter, GROUND_TRUTH_FILE};

use crate::bernoulli::SparseBernoulli;
use crate::probs::{firing_probs, Groups};
use crate::{SynthConfig, SynthError};

/// SplitMix64 finaliser: decorrelates (seed, stream) pairs into independent seeds.
fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream id of the feature directions (the row blocks use 0, 1, 2, ...).
const FEATURE_STREAM: u64 = u64::MAX;

/// The true features: [features, dim] row-major, each row Gaussian then scaled to unit norm.
pub fn true_features(cfg: &SynthConfig) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(mix(cfg.seed, FEATURE_STREAM));
    let mut out = Vec::with_capacity(cfg.features * cfg.dim);
    let mut row = vec![0f64; cfg.dim];
    for _ in 0..cfg.features {
        loop {
            row.iter_mut().for_each(|v| *v = rng.sample(StandardNormal));
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 1e-12 {
                out.extend(row.iter().map(|v| (v / norm) as f32));
                break;
            }
        }
    }
    out
}

/// Which features fire in one sample.
enum Firing {
    Independent(SparseBernoulli),
    Grouped {
        groups: SparseBernoulli,
        members: Vec<SparseBernoulli>,
    },
}

impl Firing {
    fn new(cfg: &SynthConfig) -> Firing {
        let probs = firing_probs(cfg.features, cfg.firing_prob, cfg.zipf_exponent);
        match cfg.correlated_groups {
            None => {
                let ids: Vec<u32> = (0..cfg.features as u32).collect();
                Firing::Independent(SparseBernoulli::new(&ids, &probs))
            }
            Some(g) => {
                let groups = Groups::new(&probs, g);
                let gids: Vec<u32> = (0..g as u32).collect();
                Firing::Grouped {
                    groups: SparseBernoulli::new(&gids, &groups.on_prob),
                    members: groups
                        .members
                        .iter()
                        .zip(&groups.member_prob)
                        .map(|(m, p)| SparseBernoulli::new(m, p))
                        .collect(),
                }
            }
        }
    }

    fn sample(&self, rng: &mut StdRng, out: &mut Vec<u32>, scratch: &mut Vec<u32>) {
        out.clear();
        match self {
            Firing::Independent(s) => s.sample(rng, out),
            Firing::Grouped { groups, members } => {
                scratch.clear();
                groups.sample(rng, scratch);
                // Groups in id order so the output does not depend on the sampler's block order.
                scratch.sort_unstable();
                for &g in scratch.iter() {
                    members[g as usize].sample(rng, out);
                }
            }
        }
    }
}

/// Fills `rows` [n, dim] for block `block`: each row is the sum of its firing features times
/// U[0, 1) magnitudes (with a hierarchy, the parents of firing children fire too, with their
/// first firing child's magnitude: [`crate::HierarchySpec::tie_magnitudes`]). With `fired`,
/// the firing features of each row are appended to it (sorted).
fn fill_block(
    cfg: &SynthConfig,
    features: &[f32],
    firing: &Firing,
    block: u64,
    rows: &mut [f32],
    mut fired: Option<&mut Vec<Vec<u32>>>,
) {
    let d = cfg.dim;
    let mut rng = StdRng::seed_from_u64(mix(cfg.seed, block));
    let (mut on, mut scratch, mut mags) = (Vec::new(), Vec::new(), Vec::new());
    rows.fill(0.0);
    for row in rows.chunks_exact_mut(d) {
        firing.sample(&mut rng, &mut on, &mut scratch);
        if let Some(h) = &cfg.hierarchy {
            h.add_parents(&mut on);
        }
        mags.clear();
        mags.extend(on.iter().map(|_| rng.random::<f32>()));
        if let Some(h) = &cfg.hierarchy {
            h.tie_magnitudes(&on, &mut mags);
        }
        for (&i, &m) in on.iter().zip(&mags) {
            let f = &features[i as usize * d..(i as usize + 1) * d];
            for (x, v) in row.iter_mut().zip(f) {
                *x += m * v;
            }
        }
        if let Some(out) = fired.as_deref_mut() {
            let mut sorted = on.clone();
            sorted.sort_unstable();
            out.push(sorted);
        }
    }
}

/// The firing features of rows `from..cfg.samples` (the held-out rows when `from` is where
/// they start), by generating their blocks again.
pub fn firing_sets(cfg: &SynthConfig, features: &[f32], from: u64) -> Vec<Vec<u32>> {
    let firing = Firing::new(cfg);
    let shard = cfg.shard_rows as u64;
    let mut out = Vec::new();
    let mut block = from / shard;
    let mut rows = vec![0f32; cfg.shard_rows * cfg.dim];
    while block * shard < cfg.samples {
        let n = (cfg.samples - block * shard).min(shard) as usize;
        let mut sets = Vec::with_capacity(n);
        fill_block(
            cfg,
            features,
            &firing,
            block,
            &mut rows[..n * cfg.dim],
            Some(&mut sets),
        );
        let skip = from.saturating_sub(block * shard) as usize;
        out.extend(sets.into_iter().skip(skip));
        block += 1;
    }
    out
}

/// Serializes the ground truth `features` [n, d] as safetensors bytes.
pub fn ground_truth_bytes(features: &[f32], n: usize, d: usize) -> Result<Vec<u8>, SynthError> {
    let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, d], &bytes)?;
    Ok(safetensors::serialize([("features", view)], None)?)
}

/// Writes the store described by `cfg` into `out` (see the module doc). With `resume`, an
/// incomplete store left in `out` by the same settings is continued after its last shard.
/// `progress` is called with the number of rows written so far.
pub fn generate(
    cfg: &SynthConfig,
    out: &Path,
    resume: bool,
    mut progress: impl FnMut(u64),
) -> Result<Manifest, SynthError> {
    cfg.validate()?;
    let mut writer = if resume && out.join(sae_store::MANIFEST_FILE).exists() {
        let w = StoreWriter::resume(out, cfg.shard_rows)?;
        let m = w.manifest();
        let recorded = Hierarchy::read(out)?.map(|h| h.parents);
        let same = m.source == cfg.source()
            && m.d == cfg.dim
            && m.dtype == cfg.dtype
            && recorded == cfg.hierarchy.map(|h| h.parents());
        let aligned = w.rows() % cfg.shard_rows as u64 == 0;
        if !same || !aligned {
            return Err(SynthError::ResumeMismatch {
                dir: out.display().to_string(),
            });
        }
        w
    } else {
        let spec = StoreSpec {
            d: cfg.dim,
            dtype: cfg.dtype,
            shard_rows: cfg.shard_rows,
            source: cfg.source(),
            with_token_ids: false,
            with_doc_ids: false,
            with_positions: false,
        };
        let w = StoreWriter::create(out, spec)?;
        if let Some(h) = &cfg.hierarchy {
            let eval_firing = Vec::new();
            Hierarchy {
                parents: h.parents(),
                eval_firing,
            }
            .write(out)?;
        }
        w
    };
    let features = true_features(cfg);
    let gt = ground_truth_bytes(&features, cfg.features, cfg.dim)?;
    sae_store::atomic_write(&out.join(GROUND_TRUTH_FILE), &gt)?;
    let firing = Firing::new(cfg);
    let shard = cfg.shard_rows as u64;
    let mut block = writer.rows() / shard;
    let mut rows = vec![0f32; cfg.shard_rows * cfg.dim];
    progress(writer.rows());
    while block * shard < cfg.samples {
        let n = (cfg.samples - block * shard).min(shard) as usize;
        let buf = &mut rows[..n * cfg.dim];
        fill_block(cfg, &features, &firing, block, buf, None);
        let next = block * shard + n as u64;
        let cursor = serde_json::json!({ "next_sample": next });
        writer.push(
            RowBatch {
                acts: buf,
                ..Default::default()
            },
            Some(cursor),
        )?;
        block += 1;
        progress(next);
    }
    // Before the store is marked complete: a kill in between leaves a store to resume.
    if let Some(h) = &cfg.hierarchy {
        let eval_firing = firing_sets(cfg, &features, cfg.samples - cfg.eval_rows());
        Hierarchy {
            parents: h.parents(),
            eval_firing,
        }
        .write(out)?;
    }
    Ok(writer.finish(cfg.eval_rows())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts of each feature's firings, and of features `a` and `b` firing together.
    fn count(cfg: &SynthConfig, trials: u32, a: u32, b: u32) -> (Vec<u32>, u32) {
        let firing = Firing::new(cfg);
        let mut rng = StdRng::seed_from_u64(11);
        let (mut counts, mut pair) = (vec![0u32; cfg.features], 0u32);
        let (mut on, mut scratch) = (Vec::new(), Vec::new());
        for _ in 0..trials {
            firing.sample(&mut rng, &mut on, &mut scratch);
            on.iter().for_each(|&i| counts[i as usize] += 1);
            pair += (on.contains(&a) && on.contains(&b)) as u32;
        }
        (counts, pair)
    }

    /// Firing frequencies of every feature match the marginals, with Zipf and groups.
    #[test]
    fn firing_frequencies_match_with_zipf_and_groups() {
        let mut cfg = SynthConfig::new(40, 4, 0.05, 1);
        cfg.zipf_exponent = Some(1.0);
        cfg.correlated_groups = Some(4);
        let probs = firing_probs(40, 0.05, Some(1.0));
        let trials = 100_000;
        let (counts, _) = count(&cfg, trials, 0, 1);
        for (i, p) in probs.iter().enumerate() {
            let f = counts[i] as f64 / trials as f64;
            let tol = 5.0 * (p * (1.0 - p) / trials as f64).sqrt();
            assert!((f - p).abs() <= tol, "feature {i}: {f} vs {p}");
        }
    }

    /// Members of one group co-fire about 1/q = 4 times more often than independent features.
    #[test]
    fn grouped_features_co_fire() {
        let mut cfg = SynthConfig::new(40, 4, 0.05, 1);
        cfg.correlated_groups = Some(4);
        let trials = 200_000;
        // Features 4 and 8 share group 0 (q = 0.25); 4 and 5 are in different groups.
        let (_, same) = count(&cfg, trials, 4, 8);
        let (_, apart) = count(&cfg, trials, 4, 5);
        let (same, apart) = (same as f64 / trials as f64, apart as f64 / trials as f64);
        assert!(
            (same - 0.01).abs() < 0.0015,
            "same group: {same}, want 0.05^2/0.25 = 0.01"
        );
        assert!(
            (apart - 0.0025).abs() < 0.0008,
            "different groups: {apart}, want 0.0025"
        );
    }

    /// A row is the magnitude-weighted sum of its features: E[x] = sum_i p_i / 2 * f_i.
    #[test]
    fn rows_are_sparse_sums_of_the_features() {
        let cfg = SynthConfig::new(8, 6, 0.2, 40_000);
        let features = true_features(&cfg);
        let mut rows = vec![0f32; 40_000 * 6];
        fill_block(&cfg, &features, &Firing::new(&cfg), 0, &mut rows, None);
        for j in 0..6 {
            let mean = rows
                .iter()
                .skip(j)
                .step_by(6)
                .map(|v| *v as f64)
                .sum::<f64>()
                / 40_000.0;
            let want: f64 = (0..8).map(|i| 0.2 * 0.5 * features[i * 6 + j] as f64).sum();
            assert!((mean - want).abs() < 0.01, "dim {j}: {mean} vs {want}");
        }
        let zero_rows = rows
            .chunks(6)
            .filter(|r| r.iter().all(|v| *v == 0.0))
            .count();
        // P(no feature fires) = 0.8^8 = 0.168.
        let frac = zero_rows as f64 / 40_000.0;
        assert!((frac - 0.8f64.powi(8)).abs() < 0.01, "{frac}");
    }
}

#[cfg(test)]
mod hierarchy_tests {
    use super::*;
    use crate::HierarchySpec;

    /// A hierarchical store records its held-out rows' firing features, and they are the rows'
    /// own: children bring their parent, a row with no feature is zero, a one-feature row points
    /// along that feature.
    #[test]
    fn held_out_firing_sets_match_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SynthConfig::new(30, 8, 0.05, 3000);
        cfg.hierarchy = Some(HierarchySpec {
            parents: 4,
            children: 3,
        });
        cfg.shard_rows = 1000;
        cfg.eval_frac = 0.4;
        generate(&cfg, dir.path(), false, |_| {}).unwrap();
        let h = Hierarchy::read(dir.path()).unwrap().unwrap();
        assert_eq!(h.parents[3].children, vec![13, 14, 15]);
        assert_eq!(h.eval_firing.len(), 1200);
        let store = sae_store::Store::open(dir.path()).unwrap();
        let rows: Vec<f32> = store
            .chunks(sae_store::Split::Eval)
            .flat_map(|c| c.unwrap().acts)
            .collect();
        let features = true_features(&cfg);
        let (mut with_child, mut single) = (0, 0);
        for (x, on) in rows.chunks(8).zip(&h.eval_firing) {
            for &i in on {
                if let Some(p) = cfg.hierarchy.unwrap().parent_of(i) {
                    assert!(on.contains(&p), "{on:?}");
                    with_child += 1;
                }
            }
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert_eq!(norm == 0.0, on.is_empty(), "{on:?}");
            if let [i] = on.as_slice() {
                let f = &features[*i as usize * 8..(*i as usize + 1) * 8];
                let cos = x.iter().zip(f).map(|(a, b)| a * b).sum::<f32>() / norm;
                assert!(cos > 0.9999, "row of feature {i} has cosine {cos}");
                single += 1;
            }
        }
        assert!(with_child > 50 && single > 50, "{with_child} {single}");
    }
}
