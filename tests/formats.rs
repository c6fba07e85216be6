//! Hand-made SAELens (modern and pre-6.0 flat cfg.json) and sparsify folders with tiny tensors
//! (d_in 2, d_sae 3) load with the right orientation: encode/decode match values computed by hand.
//!
//! The SAE in every folder (written in each format's own layout and dtype):
//!   W_enc [2, 3] = [[1, 0, -1], [0, 1, 2]]   b_enc = [0, 0.5, -1]
//!   W_dec [3, 2] = [[1, 0], [0, 1], [1, 1]]  b_dec = [0.5, -0.5]
//! Inputs x = [[2.5, -1.5], [0.5, 2.5]]:
//!   x - b_dec = [[2, -1], [0, 3]]
//!   pre-acts  = (x - b_dec) W_enc + b_enc = [[2, -0.5, -5], [0, 3.5, 5]]
//!   ReLU      f = [[2, 0, 0], [0, 3.5, 5]]   -> x_hat = f W_dec + b_dec = [[2.5, -0.5], [5.5, 8.0]]
//!   TopK k=1  f = [[2, 0, 0], [0, 0, 5]]     -> x_hat = [[2.5, -0.5], [5.5, 4.5]]
//!   JumpReLU theta = [1, 3, 5] (z > theta): f = [[2, 0, 0], [0, 3.5, 0]] -> x_hat = [[2.5, -0.5], [0.5, 3.0]]
//!   without b_dec on the input: pre-acts = x W_enc + b_enc = [[2.5, -1, -6.5], [0.5, 3, 3.5]]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use sae_model::{Activation, Sae, SaeError};

const X: [[f32; 2]; 2] = [[2.5, -1.5], [0.5, 2.5]];
const W_ENC: [[f32; 3]; 2] = [[1.0, 0.0, -1.0], [0.0, 1.0, 2.0]];
const W_DEC: [[f32; 2]; 3] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];

fn t(values: &[f32], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_slice(values, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn flat<const N: usize>(rows: &[[f32; N]]) -> Vec<f32> {
    rows.iter().flatten().copied().collect()
}

fn write(dir: &Path, file: &str, tensors: Vec<(&str, Tensor)>) {
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, dir.join(file)).unwrap();
}

/// SAELens tensors in `dtype`, W_enc in SAELens orientation [d_in, d_sae].
fn saelens_weights(dir: &Path, dtype: DType, threshold: bool) {
    let mut tensors = vec![
        ("W_enc", t(&flat(&W_ENC), &[2, 3], dtype)),
        ("b_enc", t(&[0.0, 0.5, -1.0], &[3], dtype)),
        ("W_dec", t(&flat(&W_DEC), &[3, 2], dtype)),
        ("b_dec", t(&[0.5, -0.5], &[2], dtype)),
    ];
    if threshold {
        tensors.push(("threshold", t(&[1.0, 3.0, 5.0], &[3], dtype)));
    }
    write(dir, "sae_weights.safetensors", tensors);
}

fn cfg(dir: &Path, json: &str) {
    std::fs::write(dir.join("cfg.json"), json).unwrap();
}

/// Encodes and decodes X; returns (f, x_hat).
fn run(sae: &Sae) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let x = t(&flat(&X), &[2, 2], DType::F32);
    let f = sae.encode(&x).unwrap();
    let x_hat = sae.decode(&f).unwrap();
    (f.to_vec2().unwrap(), x_hat.to_vec2().unwrap())
}

fn assert_close(got: &[Vec<f32>], want: &[&[f32]]) {
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.iter().zip(w.iter()) {
            assert!((a - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}

#[test]
fn modern_saelens_standard_folder() {
    let dir = tempfile::tempdir().unwrap();
    cfg(
        dir.path(),
        r#"{"architecture": "standard", "d_in": 2, "d_sae": 3, "dtype": "float32",
        "device": "cpu", "apply_b_dec_to_input": true, "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"sae_lens_version": "6.5.1", "model_name": "gpt2", "hook_name": "blocks.0.hook_resid_pre",
                     "context_size": 128, "prepend_bos": true, "dataset_path": "monology/pile-uncopyrighted"}}"#,
    );
    saelens_weights(dir.path(), DType::F32, false);
    let sae = Sae::load(dir.path()).unwrap();
    assert_eq!(sae.cfg.activation, Activation::Relu);
    assert_eq!(
        sae.cfg.metadata.hook_name.as_deref(),
        Some("blocks.0.hook_resid_pre")
    );
    assert_eq!(sae.cfg.metadata.context_size, Some(128));
    assert_eq!(sae.cfg.metadata.extra["sae_lens_version"], "6.5.1");
    let pre = sae.pre_acts(&t(&flat(&X), &[2, 2], DType::F32)).unwrap();
    assert_close(
        &pre.to_vec2().unwrap(),
        &[&[2.0, -0.5, -5.0], &[0.0, 3.5, 5.0]],
    );
    let (f, x_hat) = run(&sae);
    assert_close(&f, &[&[2.0, 0.0, 0.0], &[0.0, 3.5, 5.0]]);
    assert_close(&x_hat, &[&[2.5, -0.5], &[5.5, 8.0]]);
}

#[test]
fn modern_saelens_jumprelu_folder_in_bfloat16() {
    let dir = tempfile::tempdir().unwrap();
    cfg(
        dir.path(),
        r#"{"architecture": "jumprelu", "d_in": 2, "d_sae": 3, "dtype": "bfloat16",
        "device": "cuda", "apply_b_dec_to_input": true, "normalize_activations": "none",
        "metadata": {"hook_name": "blocks.5.hook_resid_post"}}"#,
    );
    saelens_weights(dir.path(), DType::BF16, true);
    let sae = Sae::load(dir.path()).unwrap();
    assert_eq!(sae.cfg.activation, Activation::JumpRelu);
    let (f, x_hat) = run(&sae);
    assert_close(&f, &[&[2.0, 0.0, 0.0], &[0.0, 3.5, 0.0]]);
    assert_close(&x_hat, &[&[2.5, -0.5], &[0.5, 3.0]]);
}

#[test]
fn flat_pre6_saelens_topk_folder_in_float16() {
    let dir = tempfile::tempdir().unwrap();
    cfg(
        dir.path(),
        r#"{"model_name": "gpt2-small", "hook_point": "blocks.8.hook_resid_pre",
        "hook_point_layer": 8, "d_in": 2, "d_sae": 3, "dtype": "torch.float16", "device": "cuda",
        "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 1}, "apply_b_dec_to_input": true,
        "normalize_activations": "none", "context_size": 64, "prepend_bos": true,
        "finetuning_scaling_factor": false, "sae_lens_training_version": "3.13.0"}"#,
    );
    saelens_weights(dir.path(), DType::F16, false);
    let sae = Sae::load(dir.path()).unwrap();
    assert_eq!(sae.cfg.activation, Activation::TopK { k: 1 });
    assert_eq!(
        sae.cfg.metadata.hook_name.as_deref(),
        Some("blocks.8.hook_resid_pre")
    );
    assert_eq!(sae.cfg.metadata.extra["hook_point_layer"], 8);
    let (f, x_hat) = run(&sae);
    assert_close(&f, &[&[2.0, 0.0, 0.0], &[0.0, 0.0, 5.0]]);
    assert_close(&x_hat, &[&[2.5, -0.5], &[5.5, 4.5]]);
}

#[test]
fn flat_pre6_saelens_relu_without_b_dec_on_the_input() {
    let dir = tempfile::tempdir().unwrap();
    cfg(
        dir.path(),
        r#"{"model_name": "gpt2", "hook_name": "blocks.0.hook_mlp_out", "d_in": 2,
        "d_sae": 3, "activation_fn_str": "relu", "apply_b_dec_to_input": false,
        "normalize_activations": "none", "dtype": "float32"}"#,
    );
    saelens_weights(dir.path(), DType::F32, false);
    let sae = Sae::load(dir.path()).unwrap();
    assert!(!sae.cfg.apply_b_dec_to_input);
    let pre = sae.pre_acts(&t(&flat(&X), &[2, 2], DType::F32)).unwrap();
    assert_close(
        &pre.to_vec2().unwrap(),
        &[&[2.5, -1.0, -6.5], &[0.5, 3.0, 3.5]],
    );
    let (_, x_hat) = run(&sae);
    // f = [[2.5, 0, 0], [0.5, 3, 3.5]] -> x_hat = [[3, -0.5], [4.5, 6.0]].
    assert_close(&x_hat, &[&[3.0, -0.5], &[4.5, 6.0]]);
}

#[test]
fn sparsify_folder_in_bfloat16() {
    let dir = tempfile::tempdir().unwrap();
    cfg(
        dir.path(),
        r#"{"expansion_factor": 32, "normalize_decoder": true, "num_latents": 3, "k": 1,
        "multi_topk": false, "skip_connection": false, "d_in": 2}"#,
    );
    // sparsify's encoder is an nn.Linear: weight [d_sae, d_in] = W_enc^T.
    let enc_t: Vec<f32> = (0..3)
        .flat_map(|j| (0..2).map(move |i| W_ENC[i][j]))
        .collect();
    write(
        dir.path(),
        "sae.safetensors",
        vec![
            ("encoder.weight", t(&enc_t, &[3, 2], DType::BF16)),
            ("encoder.bias", t(&[0.0, 0.5, -1.0], &[3], DType::BF16)),
            ("W_dec", t(&flat(&W_DEC), &[3, 2], DType::BF16)),
            ("b_dec", t(&[0.5, -0.5], &[2], DType::BF16)),
        ],
    );
    let sae = Sae::load(dir.path()).unwrap();
    assert_eq!(sae.cfg.activation, Activation::TopK { k: 1 });
    assert_eq!((sae.d_in(), sae.d_sae()), (2, 3));
    let (f, x_hat) = run(&sae);
    assert_close(&f, &[&[2.0, 0.0, 0.0], &[0.0, 0.0, 5.0]]);
    assert_close(&x_hat, &[&[2.5, -0.5], &[5.5, 4.5]]);
    // Saved by us, it reloads as a SAELens folder with identical outputs.
    let ours = dir.path().join("ours");
    sae.save(&ours, None).unwrap();
    assert_eq!(run(&Sae::load(&ours).unwrap()), run(&sae));
}

#[test]
fn wrong_orientation_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    cfg(
        dir.path(),
        r#"{"architecture": "standard", "d_in": 2, "d_sae": 3, "metadata": {}}"#,
    );
    write(
        dir.path(),
        "sae_weights.safetensors",
        vec![
            ("W_enc", t(&[0.0; 6], &[3, 2], DType::F32)),
            ("b_enc", t(&[0.0; 3], &[3], DType::F32)),
            ("W_dec", t(&[0.0; 6], &[3, 2], DType::F32)),
            ("b_dec", t(&[0.0; 2], &[2], DType::F32)),
        ],
    );
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(matches!(err, SaeError::BadShape { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"W_enc\"") && msg.contains("[3, 2]") && msg.contains("[2, 3]"),
        "{msg}"
    );
}

#[test]
fn unsupported_configs_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    saelens_weights(dir.path(), DType::F32, false);
    cfg(
        dir.path(),
        r#"{"architecture": "temporal", "d_in": 2, "d_sae": 3, "metadata": {}}"#,
    );
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, SaeError::UnknownArchitecture { ref name, .. } if name == "temporal"),
        "{err}"
    );
    cfg(
        dir.path(),
        r#"{"d_in": 2, "d_sae": 3, "activation_fn_str": "tanh-relu"}"#,
    );
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(matches!(err, SaeError::UnknownArchitecture { .. }), "{err}");
    cfg(
        dir.path(),
        r#"{"d_in": 2, "d_sae": 3, "normalize_activations": "covariance_whitening"}"#,
    );
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, SaeError::UnsupportedNormalization { .. }),
        "{err}"
    );
    cfg(
        dir.path(),
        r#"{"architecture": "jumprelu", "d_in": 2, "d_sae": 3, "metadata": {}}"#,
    );
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, SaeError::MissingTensor { ref name, .. } if name == "threshold"),
        "{err}"
    );
    cfg(dir.path(), "{not json");
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(matches!(err, SaeError::BadConfig { .. }), "{err}");
    std::fs::write(dir.path().join("sae_weights.safetensors"), b"short").unwrap();
    cfg(dir.path(), r#"{"d_in": 2, "d_sae": 3}"#);
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(matches!(err, SaeError::BadSafetensors { .. }), "{err}");
}
