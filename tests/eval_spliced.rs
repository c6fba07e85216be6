//! `sae eval --model`: an SAE spliced into the real SmolLM2-135M over the packaged corpus.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{ok, one_line_error, s, sae_offline, MINILM, SMOLLM2};
use sae_model::{Activation, Sae, SaeConfig};

/// A ReLU "SAE" with x_hat = x exactly (latents relu(x), relu(-x); decoder [I; -I]).
fn identity_sae(d: usize, dir: &std::path::Path) {
    let eye = Tensor::eye(d, DType::F32, &Device::Cpu).unwrap();
    let neg = eye.neg().unwrap();
    let zeros = |n| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
    let sae = Sae::new(
        SaeConfig::new(d, 2 * d, Activation::Relu),
        Tensor::cat(&[&eye, &neg], 1).unwrap(),
        zeros(2 * d),
        Tensor::cat(&[&eye, &neg], 0).unwrap(),
        zeros(d),
        None,
    )
    .unwrap();
    sae.save(dir, None).unwrap();
}

#[test]
fn identity_sae_spliced_into_smollm2_recovers_all_of_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sae");
    identity_sae(576, &dir);
    let corpus = common::corpus().join("jargon.txt");
    let out = ok(sae_offline(&[
        "eval",
        "--sae",
        s(&dir),
        "--model",
        SMOLLM2,
        "--corpus",
        s(&corpus),
        "--hook",
        "blocks.2.hook_resid_post",
        "--max-tokens",
        "200",
        "--ctx-len",
        "64",
        "--json",
    ]));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k} in {m}"));
    assert_eq!(f("tokens"), 200.0, "exactly --max-tokens positions: {m}");
    assert!(f("ce_clean") > 0.5 && f("ce_clean") < 10.0, "{m}");
    assert!(
        f("ce_zero") > f("ce_clean"),
        "zeroing the residual stream must hurt: {m}"
    );
    assert!(f("delta_lm_loss").abs() < 1e-5, "{m}");
    assert!((f("ce_loss_recovered") - 1.0).abs() < 1e-5, "{m}");
    assert!(f("kl_sae").abs() < 1e-6 && f("kl_zero") > 0.1, "{m}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval_spliced.json")).unwrap())
            .unwrap();
    assert_eq!(written, m);
}

#[test]
fn spliced_eval_errors_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sae");
    identity_sae(576, &dir);
    let corpus = common::corpus().join("jargon.txt");
    let c = s(&corpus);
    // The SAE is 576 wide; the MLP's hidden layer is 1536.
    let err = one_line_error(&sae_offline(&[
        "eval",
        "--sae",
        s(&dir),
        "--model",
        SMOLLM2,
        "--corpus",
        c,
        "--hook",
        "blocks.2.mlp.hook_post",
    ]));
    assert!(err.contains("576") && err.contains("1536"), "{err}");
    let err = one_line_error(&sae_offline(&[
        "eval",
        "--sae",
        s(&dir),
        "--model",
        MINILM,
        "--corpus",
        c,
        "--hook",
        "blocks.2.hook_resid_post",
    ]));
    assert!(err.contains("causal"), "{err}");
    let err = one_line_error(&sae_offline(&[
        "eval",
        "--sae",
        s(&dir),
        "--model",
        SMOLLM2,
        "--corpus",
        c,
    ]));
    assert!(err.contains("hook"), "{err}");
}
