//! The spliced evaluation on the tiny GPT-2 / Llama / Qwen2 fixtures against Hugging Face transformers
//! (logits and next-token losses, clean and with block 0's output zeroed or halved: fixture values from
//! scripts/make-parity-fixtures.py), and the splice on the fast path against the candle reference path.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{close, ids, load};
use sae_lm::{Hook, HookPoint, HookSink, Packed, RowSink};
use sae_model::{Activation, Sae, SaeConfig};
use sae_splice::{cross_entropy, score_batch, Site};

/// A ReLU "SAE" with x_hat = s * x exactly: latents relu(x) and relu(-x), decoder s * [I; -I].
fn scale_sae(d: usize, s: f32) -> Sae {
    let eye = Tensor::eye(d, DType::F32, &Device::Cpu).unwrap();
    let w_enc = Tensor::cat(&[&eye, &eye.neg().unwrap()], 1).unwrap();
    let w_dec = (Tensor::cat(&[&eye, &eye.neg().unwrap()], 0).unwrap() * s as f64).unwrap();
    let zeros = |n| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
    let cfg = SaeConfig::new(d, 2 * d, Activation::Relu);
    Sae::new(cfg, w_enc, zeros(2 * d), w_dec, zeros(d), None).unwrap()
}

struct Nothing;

impl RowSink for Nothing {
    fn wants(&self, _: Hook) -> bool {
        false
    }
    fn last_layer(&self) -> Option<usize> {
        Some(0)
    }
    fn put_rows(&mut self, _: Hook, _: &[f32], _: usize) -> sae_lm::Result<()> {
        Ok(())
    }
}

fn check(name: &str) {
    let (model, acts, losses) = load(name);
    let d = model.dims().d_model;
    let hook = Hook::new(0, HookPoint::ResidPost);
    for k in 0..3 {
        let ids = ids(&acts, k);
        let want = &acts[&format!("{k}.logits")];
        let got = model
            .logits_packed(&Packed::new(&[&ids]), &mut Nothing)
            .unwrap();
        let got = Tensor::from_vec(got, want.dims(), &Device::Cpu).unwrap();
        let diff: f32 = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(
            diff <= 1e-4,
            "{name} {k}: logits differ from transformers by {diff}"
        );

        let special = vec![false; ids.len()];
        let run = |s: f32| {
            let sums = score_batch(
                &model,
                &[&ids],
                &[&special],
                Site::at(hook),
                &scale_sae(d, s),
            )
            .unwrap();
            assert_eq!(sums.positions as usize, ids.len() - 1);
            sums.metrics(name, &Site::at(hook))
        };
        let l = |key: &str| losses[k.to_string()][key].as_f64().unwrap();
        let identity = run(1.0);
        close(
            identity.ce_clean,
            l("clean"),
            1e-4,
            "CE_clean vs transformers",
        );
        close(
            identity.ce_zero,
            l("zero_resid_post_0"),
            1e-4,
            "CE_zero vs transformers",
        );
        close(identity.delta_lm_loss, 0.0, 1e-5, "identity: delta LM loss");
        close(
            identity.ce_loss_recovered.unwrap(),
            1.0,
            1e-5,
            "identity: CE recovered",
        );
        close(identity.kl_sae, 0.0, 1e-6, "identity: KL");
        close(
            identity.kl_div_score.unwrap(),
            1.0,
            1e-5,
            "identity: KL score",
        );
        let half = run(0.5);
        close(
            half.ce_sae,
            l("half_resid_post_0"),
            1e-4,
            "halved block 0 vs transformers",
        );
        assert!(half.kl_sae > 0.0);
        let zero = run(0.0);
        close(
            zero.ce_loss_recovered.unwrap(),
            0.0,
            1e-5,
            "zero SAE: CE recovered",
        );
        close(zero.kl_div_score.unwrap(), 0.0, 1e-5, "zero SAE: KL score");
    }
}

#[test]
fn gpt2_spliced_losses_match_transformers() {
    check("gpt2");
}

#[test]
fn llama_spliced_losses_match_transformers() {
    check("llama");
}

#[test]
fn qwen2_spliced_losses_match_transformers() {
    check("qwen2");
}

/// Zeroes the hook's activation at every position but the first, on the candle reference path.
struct ZeroButFirst(Hook);

impl HookSink for ZeroButFirst {
    fn wants(&self, hook: Hook) -> bool {
        hook == self.0
    }
    fn last_layer(&self) -> Option<usize> {
        Some(self.0.layer)
    }
    fn put(&mut self, _: Hook, _: &Tensor) -> sae_lm::Result<()> {
        Ok(())
    }
    fn edit(&mut self, _: Hook, x: &Tensor) -> sae_lm::Result<Option<Tensor>> {
        let (_, t, _) = x.dims3()?;
        let mut m = vec![0.0f32; t];
        m[0] = 1.0;
        let mask = Tensor::from_vec(m, (1, t, 1), &Device::Cpu)?;
        Ok(Some(x.broadcast_mul(&mask)?))
    }
}

#[test]
fn special_positions_keep_their_activation_and_are_not_scored() {
    for name in ["gpt2", "llama"] {
        let (model, acts, _) = load(name);
        let d = model.dims().d_model;
        let ids = ids(&acts, 2);
        let n = ids.len();
        for point in [HookPoint::ResidPost, HookPoint::AttnOut, HookPoint::MlpOut] {
            let hook = Hook::new(0, point);
            // Position 0 is "special": the zero SAE leaves it alone; its loss and the loss of the
            // position before a special token are not scored.
            let mut special = vec![false; n];
            special[0] = true;
            let sums = score_batch(
                &model,
                &[&ids],
                &[&special],
                Site::at(hook),
                &scale_sae(d, 0.0),
            )
            .unwrap();
            assert_eq!(sums.positions as usize, n - 2);
            let input = Tensor::from_vec(ids.clone(), (1, n), &Device::Cpu).unwrap();
            let logits = model
                .logits_reference(&input, &mut ZeroButFirst(hook))
                .unwrap();
            let rows: Vec<Vec<f32>> = logits.squeeze(0).unwrap().to_vec2().unwrap();
            let want: f64 = (1..n - 1)
                .map(|i| cross_entropy(&rows[i], ids[i + 1]))
                .sum();
            close(
                sums.ce_sae,
                want,
                1e-4 * n as f64,
                &format!("{name} {hook}: fast vs reference splice"),
            );
            assert!(
                (sums.ce_sae - sums.ce_zero).abs() > 1e-3,
                "{name} {hook}: keeping position 0 matters"
            );
        }
    }
}
