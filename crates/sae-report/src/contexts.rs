//! Example contexts per unit with bounded memory: a top-N list (distinct contexts) and a
//! uniform reservoir of active rows for quantile samples. Each keeps the token window around
//! its row; tokens after the row are filled in as later batches arrive.

use serde::{Deserialize, Serialize};

use crate::window::RowView;

/// A token window around one activation of a unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Store row of the centre token.
    pub row: u64,
    /// Document id of the centre token, when stored.
    pub doc: Option<u32>,
    /// Position of the centre token in its context, when stored.
    pub pos: Option<u32>,
    /// The unit's activation at the centre token.
    pub act: f32,
    /// Index of the centre token in `tokens`.
    pub center: usize,
    /// Token ids of the window.
    pub tokens: Vec<u32>,
    /// The unit's activation at each token of the window.
    pub acts: Vec<f32>,
    /// Tokens still to be appended after the window's end (0 once complete).
    #[serde(skip)]
    pub need_after: usize,
}

/// Window size around a centre token.
#[derive(Clone, Copy, Debug)]
pub struct WindowSpec {
    /// Tokens kept before the centre.
    pub before: usize,
    /// Tokens kept after the centre.
    pub after: usize,
}

/// Captures the window of batch row `i` for `unit` from what the view holds.
pub fn capture(view: &RowView, i: usize, unit: usize, spec: WindowSpec) -> Context {
    let c = i as isize;
    let mut start = c;
    while (c - start) < spec.before as isize && start > -view.tail_len() && view.cont(start) {
        start -= 1;
    }
    let (doc, pos) = view.doc_pos(i);
    let mut ctx = Context {
        row: view.store_row(c),
        doc,
        pos,
        act: view.act(c, unit),
        center: (c - start) as usize,
        tokens: Vec::with_capacity(spec.before + spec.after + 1),
        acts: Vec::with_capacity(spec.before + spec.after + 1),
        need_after: spec.after,
    };
    for j in start..=c {
        ctx.tokens.push(view.token(j));
        ctx.acts.push(view.act(j, unit));
    }
    extend(&mut ctx, view, c + 1, unit);
    ctx
}

/// Appends rows from `from` onward while the context continues and tokens are still wanted.
fn extend(ctx: &mut Context, view: &RowView, from: isize, unit: usize) {
    let mut j = from;
    while ctx.need_after > 0 && j < view.len() {
        if !view.cont(j) {
            ctx.need_after = 0;
            break;
        }
        ctx.tokens.push(view.token(j));
        ctx.acts.push(view.act(j, unit));
        ctx.need_after -= 1;
        j += 1;
    }
}

/// Continues a pending context with the rows of a new batch (which starts right after it).
pub fn fill_pending(ctx: &mut Context, view: &RowView, unit: usize) {
    if ctx.need_after > 0 {
        extend(ctx, view, 0, unit);
    }
}

/// Whether two rows may lie in one shared window (same document and within `span` rows).
fn overlaps(a: &Context, row: u64, doc: Option<u32>, span: u64) -> bool {
    a.doc == doc && a.row.abs_diff(row) <= span
}

/// Top-N distinct contexts of one unit by activation.
#[derive(Clone, Debug, Default)]
pub struct TopContexts {
    /// Kept contexts, unordered.
    pub items: Vec<Context>,
}

impl TopContexts {
    /// The activation a new row must exceed to be considered (after `n` items are held).
    pub fn floor(&self, n: usize) -> f32 {
        if self.items.len() < n {
            f32::NEG_INFINITY
        } else {
            self.items
                .iter()
                .map(|c| c.act)
                .fold(f32::INFINITY, f32::min)
        }
    }

    /// Offers batch row `i` with activation `a`; returns true when it was kept (and captured).
    pub fn offer(
        &mut self,
        view: &RowView,
        i: usize,
        unit: usize,
        n: usize,
        spec: WindowSpec,
    ) -> bool {
        let a = view.act(i as isize, unit);
        let row = view.store_row(i as isize);
        let (doc, _) = view.doc_pos(i);
        let span = (spec.before + spec.after) as u64;
        if self
            .items
            .iter()
            .any(|c| overlaps(c, row, doc, span) && c.act >= a)
        {
            return false;
        }
        self.items.retain(|c| !overlaps(c, row, doc, span));
        if self.items.len() >= n {
            let (k, min) = self
                .items
                .iter()
                .enumerate()
                .map(|(k, c)| (k, c.act))
                .fold((0, f32::INFINITY), |m, x| if x.1 < m.1 { x } else { m });
            if a <= min {
                return false;
            }
            self.items.swap_remove(k);
        }
        self.items.push(capture(view, i, unit, spec));
        true
    }

    /// The contexts, highest activation first.
    pub fn sorted(mut self) -> Vec<Context> {
        self.items
            .sort_by(|a, b| b.act.total_cmp(&a.act).then(a.row.cmp(&b.row)));
        self.items
    }
}

/// Uniform sample (Algorithm R) of a unit's active rows with their windows.
#[derive(Clone, Debug, Default)]
pub struct Reservoir {
    /// Sampled contexts.
    pub items: Vec<Context>,
    /// Active rows offered so far.
    pub seen: u64,
}

impl Reservoir {
    /// Offers an active batch row; `draw` is a uniform random u64. Returns true when captured.
    pub fn offer(
        &mut self,
        view: &RowView,
        i: usize,
        unit: usize,
        cap: usize,
        spec: WindowSpec,
        draw: u64,
    ) -> bool {
        self.seen += 1;
        if self.items.len() < cap {
            self.items.push(capture(view, i, unit, spec));
            return true;
        }
        let j = (draw % self.seen) as usize;
        if j < cap {
            self.items[j] = capture(view, i, unit, spec);
            return true;
        }
        false
    }

    /// Splits the sample into `bands` quantile bands of activation (lowest first) and picks up to
    /// `per_band` contexts evenly spread within each band.
    pub fn quantile_samples(mut self, bands: usize, per_band: usize) -> Vec<QuantileBand> {
        self.items
            .sort_by(|a, b| a.act.total_cmp(&b.act).then(a.row.cmp(&b.row)));
        let n = self.items.len();
        if n == 0 || bands == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for b in 0..bands {
            let (lo, hi) = (b * n / bands, (b + 1) * n / bands);
            if lo >= hi {
                continue;
            }
            let band = &self.items[lo..hi];
            let take = per_band.min(band.len());
            let contexts = (0..take)
                .map(|k| band[(2 * k + 1) * band.len() / (2 * take)].clone())
                .collect();
            out.push(QuantileBand {
                q_lo: b as f64 / bands as f64,
                q_hi: (b + 1) as f64 / bands as f64,
                act_lo: band[0].act,
                act_hi: band[band.len() - 1].act,
                contexts,
            });
        }
        out
    }
}

/// Sample contexts from one quantile band of a unit's active values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantileBand {
    /// Lower quantile of the band among active values (0 = weakest).
    pub q_lo: f64,
    /// Upper quantile of the band.
    pub q_hi: f64,
    /// Smallest sampled activation in the band.
    pub act_lo: f32,
    /// Largest sampled activation in the band.
    pub act_hi: f32,
    /// Sampled contexts, weakest first.
    pub contexts: Vec<Context>,
}
