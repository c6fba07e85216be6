//! The logit lens of `sae report`: a decoder row read through the model's final norm weight and
//! unembedding. It applies where the decoder rows live in the residual stream: an SAE's rows are
//! in its input hook's space (d_in = d_out, the model's width); a transcoder's are in its output
//! hook's space (e.g. `hook_mlp_out`, added to the residual stream), so its lens reads W_dec
//! [d_sae, d_out] exactly as a residual-stream SAE's, and is skipped, with a note saying why,
//! when the output hook is not one the residual stream is made of.

use anyhow::Context;
use sae_lm::{resolve_model, Hook, HookPoint, LogitLens, ModelSpec};
use sae_model::Sae;
use sae_store::Store;

/// The spec of a model read from the local cache only.
pub fn offline_spec(id: &str) -> ModelSpec {
    ModelSpec {
        offline: true,
        ..ModelSpec::new(id)
    }
}

/// Whether vectors at this hook point live in the residual stream (are it, or are added to it).
/// The MLP's input (`ln2.hook_normalized`) is normalized and `mlp.hook_post` is d_mlp wide:
/// neither is.
fn in_residual_space(point: HookPoint) -> bool {
    match point {
        HookPoint::ResidPre | HookPoint::AttnOut | HookPoint::MlpOut | HookPoint::ResidPost => true,
        HookPoint::MlpIn | HookPoint::MlpPost => false,
    }
}

/// Why the lens of a model of residual width `d_model` does not apply to `sae`'s decoder rows
/// (`out_hook`: a transcoder's output hook), or `None` when it does.
pub fn lens_refusal(d_model: usize, sae: &Sae, out_hook: Option<&str>) -> Option<String> {
    if !sae.cfg.is_transcoder() {
        let fits = d_model == sae.d_out();
        return (!fits).then(|| format!(
            "no logit lens: the model's residual width is {d_model} but the SAE's decoder writes width {} (not a residual-stream SAE)",
            sae.d_out()
        ));
    }
    let Some(name) = out_hook else {
        return Some("no logit lens: the transcoder's output hook is unknown (its cfg.json has no metadata.hook_name_out and no --target-store names one), so it is not known whether its decoder rows live in the residual stream".into());
    };
    match Hook::parse(name) {
        Some(h) if in_residual_space(h.point) => {}
        _ => {
            return Some(format!(
                "no logit lens: the transcoder writes {name}, which is not in the residual stream (the lens reads decoder rows in the space of hook_resid_pre, hook_attn_out, hook_mlp_out or hook_resid_post)"
            ))
        }
    }
    (d_model != sae.d_out()).then(|| {
        format!(
            "no logit lens: the model's residual width is {d_model} but the transcoder's decoder writes width {} into {name}",
            sae.d_out()
        )
    })
}

/// The lens of `model` for `sae`'s decoder rows: `None` without a model, for an encoder without an
/// unembedding, or where the rows are not in the residual stream (then with a note in `notes`).
pub fn load_lens(
    model: Option<&str>,
    sae: &Sae,
    target: Option<&Store>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<LogitLens>> {
    let Some(m) = model else { return Ok(None) };
    let resolved =
        resolve_model(&offline_spec(m)).with_context(|| format!("resolving model {m:?}"))?;
    let Some(lens) = LogitLens::load(&resolved)
        .with_context(|| format!("loading model {m:?} for the logit lens"))?
    else {
        return Ok(None);
    };
    let out_hook = sae_report::output_hook(sae, target);
    match lens_refusal(lens.d_model(), sae, out_hook.as_deref()) {
        Some(note) => {
            notes.push(note);
            Ok(None)
        }
        None => Ok(Some(lens)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};
    use sae_model::{Activation, SaeConfig};

    fn coder(d_in: usize, d_out: Option<usize>) -> Sae {
        let mut cfg = SaeConfig::new(d_in, 3, Activation::Relu);
        cfg.d_out = d_out;
        cfg.apply_b_dec_to_input = d_out.is_none();
        let z = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
        let w = d_out.unwrap_or(d_in);
        Sae::new(cfg, z(&[d_in, 3]), z(&[3]), z(&[3, w]), z(&[w]), None).unwrap()
    }

    #[test]
    fn the_lens_reads_decoder_rows_only_in_the_residual_stream() {
        let sae = coder(16, None);
        assert_eq!(lens_refusal(16, &sae, None), None);
        assert!(lens_refusal(8, &sae, None).unwrap().contains("width 16"));
        let tc = coder(16, Some(16));
        for ok in ["blocks.1.hook_mlp_out", "blocks.0.hook_resid_post"] {
            assert_eq!(lens_refusal(16, &tc, Some(ok)), None, "{ok}");
        }
        for not in [
            "blocks.1.ln2.hook_normalized",
            "blocks.1.mlp.hook_post",
            "embed",
        ] {
            let note = lens_refusal(16, &tc, Some(not)).unwrap();
            assert!(note.contains("not in the residual stream"), "{note}");
        }
        assert!(lens_refusal(16, &tc, None).unwrap().contains("unknown"));
        let wide = coder(16, Some(64));
        let note = lens_refusal(16, &wide, Some("blocks.1.hook_mlp_out")).unwrap();
        assert!(note.contains("width 64"), "{note}");
    }
}
