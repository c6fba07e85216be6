//! A transcoder spliced into the tiny GPT-2 / Llama / Qwen2 fixtures from `ln2.hook_normalized` (the MLP's
//! input) to `hook_mlp_out`, against references that share none of the splice's code: transformers'
//! recorded activations and losses, the model's own down projection, and the candle reference forward
//! with a test sink that captures at one hook and writes at the later one.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{close, fixture, ids, load, reference_ce, CaptureThenWrite};
use sae_lm::{Hook, HookPoint, Packed, RowSink};
use sae_model::{Activation, Sae, SaeConfig};
use sae_splice::{cross_entropy, score_batch, Site};

const MODELS: [&str; 3] = ["gpt2", "llama", "qwen2"];

fn hook(layer: usize, point: HookPoint) -> Hook {
    Hook::new(layer, point)
}

fn mlp_site(layer: usize) -> Site {
    Site::between(
        hook(layer, HookPoint::MlpIn),
        hook(layer, HookPoint::MlpOut),
    )
    .unwrap()
}

fn zeros(n: usize) -> Tensor {
    Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap()
}

/// A transcoder (no b_dec subtraction, d_out from W_dec) of these parts.
fn transcoder(
    act: Activation,
    enc: (Tensor, Tensor),
    dec: (Tensor, Tensor),
    skip: Option<Tensor>,
) -> Sae {
    let (d_in, d_sae) = enc.0.dims2().unwrap();
    let mut cfg = SaeConfig::new(d_in, d_sae, act);
    cfg.d_out = Some(dec.0.dims2().unwrap().1);
    cfg.apply_b_dec_to_input = false;
    Sae::with_parts(cfg, enc.0, enc.1, dec.0, dec.1, None, None, skip).unwrap()
}

/// A lookup "transcoder" taking each recorded input row x_i to `scale` times the recorded output row
/// y_i: latent i reads the unit direction x_i / |x_i|, so on x_i it is the largest pre-activation
/// (|x_i|, which TopK with k 1 keeps), and writes y_i / |x_i|.
fn lookup(x: &Tensor, y: &Tensor, scale: f64) -> Sae {
    let norms = x.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
    let w_enc = x
        .broadcast_div(&norms)
        .unwrap()
        .t()
        .unwrap()
        .contiguous()
        .unwrap();
    let w_dec = (y.broadcast_div(&norms).unwrap() * scale).unwrap();
    let (n, d_out) = y.dims2().unwrap();
    transcoder(
        Activation::TopK { k: 1 },
        (w_enc, zeros(n)),
        (w_dec, zeros(d_out)),
        None,
    )
}

/// The MLP's own down projection as a skip-only "transcoder" from `mlp.hook_post` to `hook_mlp_out`
/// (no latent ever fires; x W_skip + b_dec is exactly the MLP's output), read from the fixture's weights.
fn down_projection(name: &str, layer: usize) -> Sae {
    let w = candle_core::safetensors::load(fixture(name).join("model.safetensors"), &Device::Cpu)
        .unwrap();
    let (w_skip, b) = match name {
        // GPT-2's Conv1D weight is already [in, out].
        "gpt2" => {
            let p = format!("transformer.h.{layer}.mlp.c_proj");
            (
                w[&format!("{p}.weight")].clone(),
                w[&format!("{p}.bias")].clone(),
            )
        }
        _ => {
            let down = &w[&format!("model.layers.{layer}.mlp.down_proj.weight")];
            (
                down.t().unwrap().contiguous().unwrap(),
                zeros(down.dims2().unwrap().0),
            )
        }
    };
    let (d_mlp, d) = w_skip.dims2().unwrap();
    let enc = (
        Tensor::zeros((d_mlp, 1), DType::F32, &Device::Cpu).unwrap(),
        zeros(1),
    );
    let dec = (Tensor::zeros((1, d), DType::F32, &Device::Cpu).unwrap(), b);
    transcoder(Activation::Relu, enc, dec, Some(w_skip))
}

/// Uniform values in [-a, a) from a fixed LCG.
fn uniform(shape: &[usize], a: f32, seed: &mut u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A random TopK skip transcoder d -> d.
fn random_skip_transcoder(d: usize) -> Sae {
    let mut seed = 7;
    let d_sae = 12;
    let enc = (
        uniform(&[d, d_sae], 0.5, &mut seed),
        uniform(&[d_sae], 0.1, &mut seed),
    );
    let dec = (
        uniform(&[d_sae, d], 0.3, &mut seed),
        uniform(&[d], 0.1, &mut seed),
    );
    let skip = uniform(&[d, d], 0.2, &mut seed);
    transcoder(Activation::TopK { k: 3 }, enc, dec, Some(skip))
}

/// Writes fixed rows over one hook's on the fast path.
struct Rows {
    hook: Hook,
    rows: Vec<f32>,
}

impl RowSink for Rows {
    fn wants(&self, h: Hook) -> bool {
        h == self.hook
    }
    fn last_layer(&self) -> Option<usize> {
        Some(self.hook.layer)
    }
    fn put_rows(&mut self, _: Hook, _: &[f32], _: usize) -> sae_lm::Result<()> {
        Ok(())
    }
    fn edit_rows(&mut self, _: Hook, rows: &mut [f32], _: usize) -> sae_lm::Result<()> {
        rows.copy_from_slice(&self.rows);
        Ok(())
    }
}

fn recorded(acts: &HashMap<String, Tensor>, k: usize, h: Hook) -> Tensor {
    acts[&format!("{k}.{h}")].clone()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn a_transcoder_that_reproduces_the_mlp_gives_the_clean_loss() {
    for name in MODELS {
        let (model, acts, losses) = load(name);
        for layer in 0..2 {
            let (mlp_in, mlp_post, mlp_out) = (
                hook(layer, HookPoint::MlpIn),
                hook(layer, HookPoint::MlpPost),
                hook(layer, HookPoint::MlpOut),
            );
            let post_site = Site::between(mlp_post, mlp_out).unwrap();
            let down = down_projection(name, layer);
            for k in 0..3 {
                let ids = ids(&acts, k);
                let special = vec![false; ids.len()];
                let (x, y) = (recorded(&acts, k, mlp_in), recorded(&acts, k, mlp_out));
                let what = format!("{name} layer {layer} sequence {k}");
                // Both reproduce transformers' MLP output from transformers' MLP input / hidden layer.
                let tc = lookup(&x, &y, 1.0);
                assert!(
                    max_diff(&tc.forward(&x).unwrap().1, &y) < 1e-5,
                    "{what}: lookup"
                );
                let post = recorded(&acts, k, mlp_post);
                assert!(
                    max_diff(&down.forward(&post).unwrap().1, &y) < 1e-5,
                    "{what}: down projection"
                );
                for (sae, site) in [(&tc, mlp_site(layer)), (&down, post_site)] {
                    let m = score_batch(&model, &[&ids], &[&special], site, sae)
                        .unwrap()
                        .metrics(name, &site);
                    assert_eq!(m.hook_out, Some(mlp_out.name()));
                    let clean = losses[k.to_string()]["clean"].as_f64().unwrap();
                    close(
                        m.ce_clean,
                        clean,
                        1e-4,
                        &format!("{what}: CE_clean vs transformers"),
                    );
                    close(
                        m.delta_lm_loss,
                        0.0,
                        1e-5,
                        &format!("{what} {}: delta LM loss", site.read()),
                    );
                    assert!(m.kl_sae < 1e-6, "{what}: KL {}", m.kl_sae);
                    // Zeroing the MLP moves these random models' predictions (KL 0.03..0.4), though
                    // not always up in CE, so the KL score is the meaningful ratio here.
                    assert!(
                        m.kl_zero > 0.01,
                        "{what}: KL of zeroing the MLP {}",
                        m.kl_zero
                    );
                    close(
                        m.kl_div_score.unwrap(),
                        1.0,
                        1e-4,
                        &format!("{what}: KL score"),
                    );
                }
                // Half of the MLP's output, spliced by the transcoder and by the test's reference sink.
                let half = lookup(&x, &y, 0.5);
                let sums =
                    score_batch(&model, &[&ids], &[&special], mlp_site(layer), &half).unwrap();
                let mut sink = CaptureThenWrite {
                    read: mlp_out,
                    write: mlp_out,
                    f: Box::new(|t| (t * 0.5).unwrap()),
                    keep_first: false,
                    held: None,
                };
                let want = reference_ce(&model, &ids, &mut sink, 0);
                close(
                    sums.ce_sae,
                    want,
                    1e-4,
                    &format!("{what}: half the MLP vs the reference path"),
                );
                assert!(
                    sums.kl_sae > 1e-3 && (sums.ce_sae - sums.ce_clean).abs() > 1e-4,
                    "{what}: halving must show"
                );
            }
        }
    }
}

#[test]
fn zero_ablation_zeroes_the_mlp_output_at_every_position() {
    for name in MODELS {
        let (model, acts, _) = load(name);
        let d = model.dims().d_model;
        let tc = random_skip_transcoder(d);
        let k = 2;
        let ids = ids(&acts, k);
        let n = ids.len();
        let mut special = vec![false; n];
        special[0] = true;
        for layer in 0..2 {
            let what = format!("{name} layer {layer}");
            let sums = score_batch(&model, &[&ids], &[&special], mlp_site(layer), &tc).unwrap();
            assert_eq!(
                sums.positions as usize,
                n - 2,
                "{what}: position 0 is special"
            );
            // The candle reference path with hook_mlp_out zeroed everywhere, special position included.
            let mlp_out = hook(layer, HookPoint::MlpOut);
            let mut zero = CaptureThenWrite {
                read: mlp_out,
                write: mlp_out,
                f: Box::new(|t| t.zeros_like().unwrap()),
                keep_first: false,
                held: None,
            };
            let want = reference_ce(&model, &ids, &mut zero, 1);
            close(
                sums.ce_zero,
                want,
                1e-4 * n as f64,
                &format!("{what}: vs the reference path"),
            );
            // Transformers' own numbers: without the MLP, the block's output is resid_pre + attn_out.
            let resid = (recorded(&acts, k, hook(layer, HookPoint::ResidPre))
                + recorded(&acts, k, hook(layer, HookPoint::AttnOut)))
            .unwrap();
            let mut rows = Rows {
                hook: hook(layer, HookPoint::ResidPost),
                rows: resid.flatten_all().unwrap().to_vec1().unwrap(),
            };
            let logits = model
                .logits_packed(&Packed::new(&[&ids]), &mut rows)
                .unwrap();
            let vocab = logits.len() / n;
            let want: f64 = (1..n - 1)
                .map(|i| cross_entropy(&logits[i * vocab..(i + 1) * vocab], ids[i + 1]))
                .sum();
            close(
                sums.ce_zero,
                want,
                1e-4 * n as f64,
                &format!("{what}: vs transformers' residuals"),
            );
            assert!(sums.kl_zero > 0.1, "{what}: zeroing the MLP must matter");
        }
    }
}

#[test]
fn a_skip_transcoder_splices_alike_on_the_fast_and_reference_paths() {
    for name in MODELS {
        let (model, acts, _) = load(name);
        let tc = random_skip_transcoder(model.dims().d_model);
        let ids = ids(&acts, 1);
        let n = ids.len();
        let mut special = vec![false; n];
        special[0] = true;
        for layer in 0..2 {
            let what = format!("{name} layer {layer}");
            let sums = score_batch(&model, &[&ids], &[&special], mlp_site(layer), &tc).unwrap();
            let tc2 = tc.clone();
            let mut sink = CaptureThenWrite {
                read: hook(layer, HookPoint::MlpIn),
                write: hook(layer, HookPoint::MlpOut),
                f: Box::new(move |x| {
                    let (_, out) = tc2.forward(&x.squeeze(0).unwrap()).unwrap();
                    out.unsqueeze(0).unwrap()
                }),
                keep_first: true,
                held: None,
            };
            let want = reference_ce(&model, &ids, &mut sink, 1);
            close(
                sums.ce_sae,
                want,
                1e-4 * n as f64,
                &format!("{what}: fast vs reference splice"),
            );
            assert!(
                sums.kl_sae > 1e-4,
                "{what}: the random transcoder must change the model"
            );
        }
    }
}

#[test]
fn widths_are_checked_on_both_sides() {
    let (model, _, _) = load("llama");
    // Llama fixture: d_model 16, d_mlp 40.
    let down = down_projection("llama", 0);
    let site = mlp_site(0);
    let err = site.check_widths(&model, &down).unwrap_err().to_string();
    assert!(
        err.contains("reads 40") && err.contains("blocks.0.ln2.hook_normalized has width 16"),
        "{err}"
    );
    let wide = transcoder(
        Activation::Relu,
        (zeros(16).reshape((16, 1)).unwrap(), zeros(1)),
        (
            Tensor::zeros((1, 40), DType::F32, &Device::Cpu).unwrap(),
            zeros(40),
        ),
        None,
    );
    let err = site.check_widths(&model, &wide).unwrap_err().to_string();
    assert!(
        err.contains("writes 40") && err.contains("blocks.0.hook_mlp_out has width 16"),
        "{err}"
    );
    site.check_widths(&model, &random_skip_transcoder(16))
        .unwrap();
}
