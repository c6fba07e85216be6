//! Save -> load roundtrips of our SAELens folders keep encode/decode identical.

use candle_core::{Device, Tensor};
use sae_model::{load_sparsity, Activation, Sae, SaeConfig, SaeError};

fn ramp(n: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.37 + offset).sin()) * scale)
        .collect()
}

fn sae(activation: Activation) -> Sae {
    let (d_in, d_sae) = (4, 6);
    let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s, &Device::Cpu).unwrap();
    let mut cfg = SaeConfig::new(d_in, d_sae, activation);
    cfg.metadata.hook_name = Some("blocks.0.hook_resid_post".into());
    cfg.metadata.trained_arch = Some("batchtopk".into());
    cfg.metadata.extra.insert("steps".into(), 7.into());
    let threshold =
        matches!(activation, Activation::JumpRelu).then(|| t(vec![0.05; d_sae], &[d_sae]));
    Sae::new(
        cfg,
        t(ramp(d_in * d_sae, 1.0, 0.0), &[d_in, d_sae]),
        t(ramp(d_sae, 0.1, 1.0), &[d_sae]),
        t(ramp(d_sae * d_in, 1.0, 2.0), &[d_sae, d_in]),
        t(ramp(d_in, 0.2, 3.0), &[d_in]),
        threshold,
    )
    .unwrap()
}

fn check_roundtrip(activation: Activation) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested").join("sae");
    let original = sae(activation);
    let density: Vec<f32> = (0..6).map(|i| -(i as f32)).collect();
    original.save(&out, Some(&density)).unwrap();
    let loaded = Sae::load(&out).unwrap();
    // The saved metadata gains the SAELens layout marker (without it SAELens drops the metadata).
    let mut want = original.cfg.clone();
    want.metadata.extra.insert(
        "sae_lens_version".into(),
        sae_model::saelens::SAELENS_LAYOUT_VERSION.into(),
    );
    assert_eq!(loaded.cfg, want);
    let x = Tensor::from_vec(ramp(3 * 4, 2.0, 0.5), (3, 4), &Device::Cpu).unwrap();
    let f0 = original.encode(&x).unwrap().to_vec2::<f32>().unwrap();
    let f1 = loaded.encode(&x).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(f0, f1);
    let fx = original.encode(&x).unwrap();
    let x0 = original.decode(&fx).unwrap().to_vec2::<f32>().unwrap();
    let x1 = loaded.decode(&fx).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(x0, x1);
    assert_eq!(load_sparsity(&out, 6).unwrap(), Some(density));
    assert!(!out.join("cfg.json.tmp").exists());
}

#[test]
fn relu_roundtrip() {
    check_roundtrip(Activation::Relu);
}

#[test]
fn topk_roundtrip() {
    check_roundtrip(Activation::TopK { k: 2 });
}

#[test]
fn jumprelu_roundtrip() {
    check_roundtrip(Activation::JumpRelu);
}

#[test]
fn cfg_json_is_saelens_layout() {
    let dir = tempfile::tempdir().unwrap();
    sae(Activation::TopK { k: 3 })
        .save(dir.path(), None)
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("cfg.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["architecture"], "topk");
    assert_eq!(v["k"], 3);
    assert_eq!(v["d_in"], 4);
    assert_eq!(v["d_sae"], 6);
    assert_eq!(v["dtype"], "float32");
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["apply_b_dec_to_input"], true);
    assert_eq!(v["normalize_activations"], "none");
    assert_eq!(v["metadata"]["hook_name"], "blocks.0.hook_resid_post");
    assert_eq!(v["metadata"]["trained_arch"], "batchtopk");
    assert_eq!(v["metadata"]["steps"], 7);
    assert!(!dir.path().join("sparsity.safetensors").exists());
}

#[test]
fn unwritable_folder_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = sae(Activation::Relu)
        .save(&blocker.join("sae"), None)
        .unwrap_err();
    assert!(matches!(err, SaeError::Io { .. }), "{err}");
}

#[test]
fn missing_folder_and_missing_weights_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Sae::load(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, SaeError::MissingDir { .. }), "{err}");
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(matches!(err, SaeError::NotAnSae { .. }), "{err}");
    std::fs::write(dir.path().join("cfg.json"), "{}").unwrap();
    let err = Sae::load(dir.path()).unwrap_err();
    assert!(matches!(err, SaeError::MissingFile { .. }), "{err}");
}

#[test]
fn topk_k_larger_than_d_sae_is_rejected() {
    let good = sae(Activation::Relu);
    let mut cfg = good.cfg.clone();
    cfg.activation = Activation::TopK { k: 7 };
    let err = Sae::new(cfg, good.w_enc, good.b_enc, good.w_dec, good.b_dec, None).unwrap_err();
    assert!(err.to_string().contains("k = 7"), "{err}");
}
