//! The trained SAE as a [`sae_model::Sae`] for raw activations (input scale folded in), with
//! provenance taken from the activation store's manifest.

use candle_core::{Device, Tensor};
use sae_model::{Activation, Sae, SaeConfig, SaeMetadata};
use sae_store::Source;

use crate::config::{ArchConfig, Prefixes};
use crate::error::Result;
use crate::trainer::Trainer;

/// Provenance of an SAE trained on the store at `store_path` produced by `source`.
pub fn metadata(source: &Source, store_path: &str) -> SaeMetadata {
    let mut m = SaeMetadata {
        dataset_path: Some(store_path.to_string()),
        ..SaeMetadata::default()
    };
    match source {
        Source::Synthetic(_) => m.model_name = Some("synthetic".into()),
        Source::Harvest(h) => {
            m.model_name = Some(h.model_id.clone());
            m.hook_name = Some(h.hook.clone());
            m.context_size = Some(h.ctx_len);
        }
        Source::Import(i) => {
            m.model_name = i.model_id.clone();
            m.hook_name = i.hook.clone();
        }
    }
    m
}

impl Trainer {
    /// The inference SAE: TopK -> topk; BatchTopK and Matryoshka BatchTopK -> jumprelu with the EMA
    /// threshold in every entry (Matryoshka's prefix widths in the metadata as `matryoshka_widths`);
    /// ReLU-L1 -> standard (ReLU); JumpReLU -> jumprelu with exp(log_threshold). A transcoder gets
    /// d_out, no b_dec on the input and the target scale folded in (`Sae::save` writes a TopK one
    /// in sparsify's layout, SAELens having no TopK transcoder).
    pub fn to_sae(&self, mut meta: SaeMetadata) -> Result<Sae> {
        let p = &self.state.params;
        let d_sae = p.d_sae;
        let (activation, threshold): (Activation, Option<Vec<f32>>) = match &self.cfg.arch {
            ArchConfig::TopK { k, .. } => (Activation::TopK { k: *k }, None),
            ArchConfig::BatchTopK { .. } | ArchConfig::MatryoshkaBatchTopK { .. } => (
                Activation::JumpRelu,
                Some(vec![self.state.threshold; d_sae]),
            ),
            ArchConfig::ReluL1 { .. } => (Activation::Relu, None),
            ArchConfig::JumpRelu { .. } => {
                let t = p
                    .log_threshold
                    .as_ref()
                    .map(|lt| lt.iter().map(|v| v.exp()).collect());
                (Activation::JumpRelu, t)
            }
        };
        meta.trained_arch = Some(self.cfg.arch.name().to_string());
        meta.extra.insert(
            "input_scale_folded".into(),
            serde_json::json!(self.state.scale),
        );
        meta.extra
            .insert("training_steps".into(), serde_json::json!(self.state.step));
        if let ArchConfig::MatryoshkaBatchTopK {
            group_fractions,
            group_weights,
            ..
        } = &self.cfg.arch
        {
            let pre = Prefixes::new(group_fractions, group_weights.as_deref(), d_sae)?;
            meta.extra
                .insert("matryoshka_widths".into(), serde_json::json!(pre.widths));
        }
        let mut cfg = SaeConfig::new(p.d_in, d_sae, activation);
        if p.transcoder {
            cfg.d_out = Some(p.d_out);
            cfg.apply_b_dec_to_input = false;
            meta.extra.insert(
                "target_scale_folded".into(),
                serde_json::json!(self.state.target_scale),
            );
        }
        cfg.metadata = meta;
        let w = p.to_tensors(self.state.scale, self.state.target_scale)?;
        let threshold = match threshold {
            Some(t) => Some(Tensor::from_vec(t, d_sae, &Device::Cpu)?),
            None => None,
        };
        Ok(Sae::with_parts(
            cfg, w.w_enc, w.b_enc, w.w_dec, w.b_dec, threshold, None, w.w_skip,
        )?)
    }
}
