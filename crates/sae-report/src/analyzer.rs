//! Per-unit statistics over a stream of batches, in one pass with bounded memory: moments,
//! density, histogram, token co-occurrence, top contexts and a reservoir of active contexts.

use serde::{Deserialize, Serialize};

use crate::bands::{BandPrecision, BandSample};
use crate::contexts::{fill_pending, Context, QuantileBand, Reservoir, TopContexts, WindowSpec};
use crate::cooccur::{GlobalCounts, UnitCooccur};
use crate::explain::Explanation;
use crate::heldout::{explain_heldout, is_heldout, Half, SplitKeys};
use crate::histogram::{Bin, LogHistogram};
use crate::moments::{accumulate_block, Moments};
use crate::window::{RowView, Tail, UnitBatch};

/// What the analysis keeps per unit (all bounded, independent of the number of rows).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSettings {
    /// Top-activating contexts kept per unit.
    pub top_n: usize,
    /// Tokens shown before the centre token of a context.
    pub before: usize,
    /// Tokens shown after the centre token of a context.
    pub after: usize,
    /// Active rows sampled per unit (uniform reservoir) for quantile examples.
    pub reservoir: usize,
    /// Quantile bands of the active values the samples are drawn from.
    pub bands: usize,
    /// Sample contexts shown per band.
    pub per_band: usize,
    /// Misra–Gries capacity of each per-unit token counter.
    pub capacity: usize,
    /// Largest token set a "token in T" hypothesis may grow to.
    pub max_set: usize,
    /// Least F1 gain for which a token is added to a "token in T" set.
    pub min_gain: f64,
    /// Held-out active rows sampled per unit for the precision by activation band.
    pub band_sample: usize,
    /// Seed of the reservoir sampling and of the fit / score split of documents.
    pub seed: u64,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            top_n: 10,
            before: 8,
            after: 3,
            reservoir: 24,
            bands: 3,
            per_band: 2,
            capacity: 64,
            max_set: 5,
            min_gain: 0.01,
            band_sample: 200,
            seed: 0,
        }
    }
}

/// Statistics of one unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitStats {
    /// Unit index (latent, neuron or basis direction).
    pub id: usize,
    /// Rows where the unit is active.
    pub active: u64,
    /// active / rows.
    pub density: f64,
    /// log10(density), `None` for a dead unit.
    pub log10_density: Option<f64>,
    /// Threshold the activation must exceed to count as active.
    pub threshold: f32,
    /// Mean activation over all rows.
    pub mean: f64,
    /// Mean activation over active rows.
    pub mean_active: Option<f64>,
    /// Population standard deviation over all rows.
    pub std: f64,
    /// Largest activation.
    pub max: f32,
    /// Skewness over all rows.
    pub skewness: Option<f64>,
    /// Kurtosis over all rows (not excess: Gaussian = 3).
    pub kurtosis: Option<f64>,
    /// Histogram of active values on half-octave bins.
    pub histogram: Vec<Bin>,
    /// Active rows in the fit half of the documents.
    pub active_fit: u64,
    /// Active rows in the score (held-out) half.
    pub active_heldout: u64,
    /// Best token hypothesis chosen on the fit half, scored on the held-out half (the score);
    /// `None` when the unit never fired on the fit half.
    pub explanation: Option<Explanation>,
    /// The same hypothesis scored on the fit half, where it was chosen (in-sample).
    pub in_sample: Option<Explanation>,
    /// Held-out precision of the explanation in the top decile, middle and bottom decile of the
    /// unit's active values (from a sample of its held-out active rows).
    pub bands: Vec<BandPrecision>,
    /// The explanation in words (filled in once token texts are known).
    pub explanation_text: Option<String>,
    /// True when the token counts behind the explanation are exact (no counter overflowed).
    pub counts_exact: bool,
    /// Top-activating contexts, strongest first.
    pub top: Vec<Context>,
    /// Sample contexts from quantile bands of the active values, weakest band first.
    pub quantiles: Vec<QuantileBand>,
}

struct UnitState {
    top: TopContexts,
    reservoir: Reservoir,
    fit: UnitCooccur,
    held: UnitCooccur,
    active_held: u64,
    sample: BandSample,
    hist: LogHistogram,
    sum_active: f64,
}

/// One-pass analyzer of a group of units.
pub struct GroupAnalyzer {
    settings: AnalysisSettings,
    units: usize,
    rows: u64,
    thr: Vec<f32>,
    top_floor: Vec<f32>,
    max: Vec<f32>,
    active: Vec<u64>,
    moments: Vec<Moments>,
    state: Vec<UnitState>,
    global_fit: GlobalCounts,
    global_held: GlobalCounts,
    keys: SplitKeys,
    held_rows: Vec<bool>,
    tail: Tail,
    pending: Vec<u32>,
    is_pending: Vec<bool>,
    rng: u64,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl GroupAnalyzer {
    /// An analyzer of `thresholds.len()` units; unit u is active where its value > `thresholds[u]`.
    pub fn new(thresholds: Vec<f32>, settings: AnalysisSettings) -> Self {
        let units = thresholds.len();
        let state = (0..units)
            .map(|_| UnitState {
                top: TopContexts::default(),
                reservoir: Reservoir::default(),
                fit: UnitCooccur::new(settings.capacity),
                held: UnitCooccur::new(settings.capacity),
                active_held: 0,
                sample: BandSample::default(),
                hist: LogHistogram::default(),
                sum_active: 0.0,
            })
            .collect();
        GroupAnalyzer {
            settings,
            units,
            rows: 0,
            top_floor: thresholds.clone(),
            thr: thresholds,
            max: vec![f32::NEG_INFINITY; units],
            active: vec![0; units],
            moments: vec![Moments::default(); units],
            state,
            global_fit: GlobalCounts::default(),
            global_held: GlobalCounts::default(),
            keys: SplitKeys::default(),
            held_rows: Vec::new(),
            tail: Tail::default(),
            pending: Vec::new(),
            is_pending: vec![false; units],
            rng: settings.seed ^ 0x5EED,
        }
    }

    /// Rows analysed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn spec(&self) -> WindowSpec {
        WindowSpec {
            before: self.settings.before,
            after: self.settings.after,
        }
    }

    /// Adds a batch; batches must arrive in store row order.
    /// batch.acts: [n, units].
    pub fn push(&mut self, batch: &UnitBatch) {
        assert_eq!(
            batch.units, self.units,
            "batch width must equal the number of units"
        );
        let n = batch.rows();
        assert_eq!(
            batch.acts.len(),
            n * self.units,
            "acts must be [rows, units]"
        );
        let spec = self.spec();
        let s = self.settings;
        let view = RowView::new(&self.tail, batch);
        // Finish windows left open by the previous batch.
        let pending = std::mem::take(&mut self.pending);
        for u in pending {
            let st = &mut self.state[u as usize];
            let mut open = false;
            for c in st.top.items.iter_mut().chain(st.reservoir.items.iter_mut()) {
                fill_pending(c, &view, u as usize);
                open |= c.need_after > 0;
            }
            self.is_pending[u as usize] = open;
            if open {
                self.pending.push(u);
            }
        }
        accumulate_block(batch.acts, n, self.units, &mut self.moments);
        Self::split_rows(&mut self.keys, &mut self.held_rows, &view, batch, s.seed);
        for i in 0..n {
            let tok = batch.token_ids[i];
            let prev = view.prev_token(i);
            let held = self.held_rows[i];
            if held {
                self.global_held.add(tok, prev);
            } else {
                self.global_fit.add(tok, prev);
            }
            let row = &batch.acts[i * self.units..(i + 1) * self.units];
            for (u, &a) in row.iter().enumerate() {
                if a > self.max[u] {
                    self.max[u] = a;
                }
                if a <= self.thr[u] {
                    continue;
                }
                self.active[u] += 1;
                let st = &mut self.state[u];
                st.hist.add(a);
                st.sum_active += a as f64;
                if held {
                    st.held.add(tok, prev);
                    st.active_held += 1;
                    let draw = splitmix(&mut self.rng);
                    st.sample.offer(a, tok, prev, s.band_sample, draw);
                } else {
                    st.fit.add(tok, prev);
                }
                let draw = splitmix(&mut self.rng);
                let mut captured = st.reservoir.offer(&view, i, u, s.reservoir, spec, draw);
                if a > self.top_floor[u] && st.top.offer(&view, i, u, s.top_n, spec) {
                    self.top_floor[u] = st.top.floor(s.top_n).max(self.thr[u]);
                    captured = true;
                }
                if captured && !self.is_pending[u] && n - i <= s.after {
                    self.is_pending[u] = true;
                    self.pending.push(u as u32);
                }
            }
        }
        self.tail = view.next_tail(s.before);
        self.rows += n as u64;
    }

    /// Marks which rows of the batch belong to the held-out half.
    fn split_rows(
        keys: &mut SplitKeys,
        held: &mut Vec<bool>,
        view: &RowView,
        b: &UnitBatch,
        seed: u64,
    ) {
        held.clear();
        for i in 0..b.rows() {
            let doc = b.doc_ids.map(|d| d[i]);
            let key = keys.next(doc, b.positions.is_some(), view.cont(i as isize));
            held.push(is_heldout(key, seed));
        }
    }

    /// Final statistics of every unit (explanations still without words).
    pub fn finish(self) -> Vec<UnitStats> {
        let rows = self.rows.max(1) as f64;
        let s = self.settings;
        let (global_fit, global_held) = (self.global_fit, self.global_held);
        self.state
            .into_iter()
            .enumerate()
            .map(|(u, st)| {
                let active = self.active[u];
                let m = &self.moments[u];
                let density = active as f64 / rows;
                let counts_exact = exact(&st.fit) && exact(&st.held);
                let fit = Half {
                    unit: &st.fit,
                    global: &global_fit,
                    active: active - st.active_held,
                };
                let score = Half {
                    unit: &st.held,
                    global: &global_held,
                    active: st.active_held,
                };
                let scores = explain_heldout(&fit, &score, s.max_set, s.min_gain);
                let bands = scores
                    .as_ref()
                    .map_or(vec![], |e| st.sample.precision(&e.heldout.hypothesis));
                UnitStats {
                    id: u,
                    active,
                    density,
                    log10_density: (active > 0).then(|| density.log10()),
                    threshold: self.thr[u],
                    mean: m.mean,
                    mean_active: (active > 0).then(|| st.sum_active / active as f64),
                    std: m.variance().sqrt(),
                    max: if self.rows > 0 { self.max[u] } else { 0.0 },
                    skewness: m.skewness(),
                    kurtosis: m.kurtosis(),
                    histogram: st.hist.bins(),
                    active_fit: active - st.active_held,
                    active_heldout: st.active_held,
                    in_sample: scores.as_ref().map(|e| e.in_sample.clone()),
                    explanation: scores.map(|e| e.heldout),
                    bands,
                    explanation_text: None,
                    counts_exact,
                    top: st.top.sorted().into_iter().map(round_context).collect(),
                    quantiles: st
                        .reservoir
                        .quantile_samples(s.bands, s.per_band)
                        .into_iter()
                        .map(|mut b| {
                            b.contexts = b.contexts.into_iter().map(round_context).collect();
                            b
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

fn exact(c: &UnitCooccur) -> bool {
    c.cur.exact() && c.prev.exact() && c.bigram.exact()
}

/// Rounds to 4 significant digits (keeps report.json small; display needs no more).
pub fn round_sig(x: f32) -> f32 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(3 - (x.abs() as f64).log10().floor() as i32);
    ((x as f64 * scale).round() / scale) as f32
}

fn round_context(mut c: Context) -> Context {
    c.act = round_sig(c.act);
    c.acts.iter_mut().for_each(|a| *a = round_sig(*a));
    c
}
