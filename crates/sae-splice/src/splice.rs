//! The splices (an SAE's reconstruction or a transcoder's prediction, zero ablation) as read-write hook
//! sinks, and the three forward passes of one batch.

use candle_core::{Device, Tensor};
use sae_lm::{Hook, LmError, Model, Packed, RowSink};
use sae_model::Sae;

use crate::error::{Result, SpliceError};
use crate::loss::{kl_divergence, log_softmax, LossSums};
use crate::site::Site;

/// What replaces the activation at the write hook.
#[derive(Clone, Copy)]
pub enum Replace<'a> {
    /// The SAE's output at the read hook's rows (an SAE's reconstruction decode(encode(x)); a
    /// transcoder's prediction, skip path included), except at the positions marked to keep.
    Sae {
        /// The SAE.
        sae: &'a Sae,
        /// Per packed position: keep the model's own activation (special tokens).
        keep: &'a [bool],
    },
    /// Zeros at every position.
    Zero,
}

/// A read-write sink that splices a replacement in: it runs the SAE on the rows offered at the site's
/// read hook and writes its output over the rows of the write hook, later in the same pass (the same
/// call for an SAE).
pub struct SpliceSink<'a> {
    site: Site,
    replace: Replace<'a>,
    /// The SAE's output for the read hook's rows, until the write hook takes it.
    pending: Option<Vec<f32>>,
}

impl<'a> SpliceSink<'a> {
    /// A sink splicing `replace` in at `site`.
    pub fn new(site: Site, replace: Replace<'a>) -> SpliceSink<'a> {
        SpliceSink {
            site,
            replace,
            pending: None,
        }
    }
}

impl RowSink for SpliceSink<'_> {
    fn wants(&self, hook: Hook) -> bool {
        hook == self.site.write()
            || matches!(self.replace, Replace::Sae { .. }) && hook == self.site.read()
    }

    fn last_layer(&self) -> Option<usize> {
        Some(self.site.write().layer)
    }

    fn put_rows(&mut self, _: Hook, _: &[f32], _: usize) -> sae_lm::Result<()> {
        Ok(())
    }

    fn edit_rows(&mut self, hook: Hook, rows: &mut [f32], width: usize) -> sae_lm::Result<()> {
        let Replace::Sae { sae, keep } = self.replace else {
            rows.fill(0.0);
            return Ok(());
        };
        let sink_err = |message: String| LmError::Sink {
            hook: hook.name(),
            message,
        };
        let n = rows.len() / width;
        if keep.len() != n {
            return Err(sink_err(format!("{} keep flags for {n} rows", keep.len())));
        }
        if hook == self.site.read() {
            let x = Tensor::from_slice(rows, (n, width), &Device::Cpu)?;
            let (_, out) = sae.forward(&x).map_err(|e| sink_err(e.to_string()))?;
            self.pending = Some(out.flatten_all()?.to_vec1()?);
        }
        if hook != self.site.write() {
            return Ok(());
        }
        let out = self
            .pending
            .take()
            .ok_or_else(|| sink_err(format!("{} was not offered before it", self.site.read())))?;
        if out.len() != rows.len() {
            return Err(sink_err(format!(
                "the SAE gave {} values per row for rows of width {width}",
                out.len() / n.max(1)
            )));
        }
        for ((row, new), &k) in rows.chunks_mut(width).zip(out.chunks(width)).zip(keep) {
            if !k {
                row.copy_from_slice(new);
            }
        }
        Ok(())
    }
}

/// Offers nothing: the clean pass.
struct Clean;

impl RowSink for Clean {
    fn wants(&self, _: Hook) -> bool {
        false
    }

    fn last_layer(&self) -> Option<usize> {
        None
    }

    fn put_rows(&mut self, _: Hook, _: &[f32], _: usize) -> sae_lm::Result<()> {
        Ok(())
    }
}

/// Packed index and next token of every scored position: not a sequence's last position, and neither
/// its own token nor the next one special.
fn scored(packed: &Packed, special: &[bool]) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for w in packed.starts.windows(2) {
        for i in w[0]..w[1].saturating_sub(1) {
            if !special[i] && !special[i + 1] {
                out.push((i, packed.ids[i + 1]));
            }
        }
    }
    out
}

/// The three forward passes over one batch of sequences (`special`: per sequence, which positions are
/// special tokens), summed over the scored positions: clean; the SAE's output at `site` (special
/// positions keep the model's own activation); the write hook zeroed at every position.
pub fn score_batch(
    model: &Model,
    seqs: &[&[u32]],
    special: &[&[bool]],
    site: Site,
    sae: &Sae,
) -> Result<LossSums> {
    if seqs.len() != special.len() || seqs.iter().zip(special).any(|(s, m)| s.len() != m.len()) {
        return Err(SpliceError::Invalid(
            "one special-token flag per token is needed".into(),
        ));
    }
    let packed = Packed::new(seqs);
    let keep: Vec<bool> = special.iter().flat_map(|s| s.iter().copied()).collect();
    let positions = scored(&packed, &keep);
    let clean = model.logits_packed(&packed, &mut Clean)?;
    let vocab = clean.len() / packed.tokens().max(1);
    let mut clean_lp = vec![0.0f32; positions.len() * vocab];
    let mut sums = LossSums {
        positions: positions.len() as u64,
        ..LossSums::default()
    };
    for (lp, &(i, t)) in clean_lp.chunks_mut(vocab).zip(&positions) {
        log_softmax(&clean[i * vocab..(i + 1) * vocab], lp);
        sums.ce_clean -= lp[t as usize] as f64;
    }
    drop(clean);
    let mut lq = vec![0.0f32; vocab];
    for replace in [Replace::Sae { sae, keep: &keep }, Replace::Zero] {
        let logits = model.logits_packed(&packed, &mut SpliceSink::new(site, replace))?;
        let (mut ce, mut kl) = (0.0, 0.0);
        for (lp, &(i, t)) in clean_lp.chunks(vocab).zip(&positions) {
            log_softmax(&logits[i * vocab..(i + 1) * vocab], &mut lq);
            ce -= lq[t as usize] as f64;
            kl += kl_divergence(lp, &lq);
        }
        match replace {
            Replace::Sae { .. } => (sums.ce_sae, sums.kl_sae) = (ce, kl),
            Replace::Zero => (sums.ce_zero, sums.kl_zero) = (ce, kl),
        }
    }
    Ok(sums)
}
