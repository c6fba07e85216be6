//! SAEs written by SAELens 6.54 and sparsify 1.3 themselves (tests/fixtures/interop, made by
//! scripts/make-interop-fixtures.py) load, and our encode / decode / forward equal the libraries'
//! own outputs (reference.safetensors) to 1e-5 (|ours - theirs| <= 1e-5 * max(1, |theirs|)).
//! `decode` is the library's decode of its own latents right after encoding x (SAELens maps it
//! back through x's normalization statistics), `out` its forward (with a skip connection).
//! The reverse direction: SAEs `sae train` wrote, loaded by SAELens, give SAELens' outputs, and
//! the fixture records that it was made with the format version we write now.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use sae_model::weights::WeightFile;
use sae_model::{Activation, InputNorm, Reshape, Sae, SaeError};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop")
        .join(rel)
}

/// The library's outputs for one SAE folder.
struct Reference {
    x: Tensor,
    acts: Tensor,
    decode: Tensor,
    out: Tensor,
    info: serde_json::Value,
}

fn matrix(file: &WeightFile, name: &str) -> Tensor {
    let shape = file.shape(name).unwrap();
    file.tensor(name, &shape).unwrap()
}

fn reference(dir: &Path) -> Reference {
    let file = WeightFile::read(&dir.join("reference.safetensors")).unwrap();
    let info = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    Reference {
        x: matrix(&file, "x"),
        acts: matrix(&file, "acts"),
        decode: matrix(&file, "decode"),
        out: matrix(&file, "out"),
        info: serde_json::from_str(&info).unwrap(),
    }
}

fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.dims(), theirs.dims(), "{what}: shapes");
    let a = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * y.abs().max(1.0),
            "{what}[{i}]: ours {x}, the library's {y}"
        );
    }
}

/// Loads `rel` (with `hook` for a folder of several), checks encode, decode and forward against
/// the library's outputs, and returns the SAE.
fn check(rel: &str, hook: Option<&str>) -> Sae {
    let dir = fixture(rel);
    let sae = Sae::load_hook(&dir, hook).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let r = reference(&match hook {
        Some(h) => dir.join(h),
        None => dir.clone(),
    });
    let acts = sae.encode(&r.x).unwrap();
    assert_close(&format!("{rel} encode"), &acts, &r.acts);
    let decoded = sae.decode_for_input(&r.acts, &r.x).unwrap();
    assert_close(&format!("{rel} decode"), &decoded, &r.decode);
    let (f, out) = sae.forward(&r.x).unwrap();
    assert_close(&format!("{rel} forward latents"), &f, &r.acts);
    assert_close(&format!("{rel} forward"), &out, &r.out);
    sae
}

#[test]
fn saelens_standard() {
    let sae = check("saelens/standard", None);
    assert_eq!(sae.cfg.activation, Activation::Relu);
    assert!(sae.cfg.apply_b_dec_to_input);
}

#[test]
fn saelens_standard_without_b_dec_on_the_input() {
    let sae = check("saelens/standard-no-bdec", None);
    assert!(!sae.cfg.apply_b_dec_to_input);
}

#[test]
fn saelens_topk() {
    let sae = check("saelens/topk", None);
    assert_eq!(sae.cfg.activation, Activation::TopK { k: 4 });
}

#[test]
fn saelens_topk_rescaled_by_decoder_norm() {
    // Saved by the inference class with decoder rows of norms 0.5-2: the case the issue hit.
    let sae = check("saelens/topk-rescale", None);
    assert_eq!(sae.cfg.activation, Activation::TopK { k: 4 });
    let cfg = std::fs::read_to_string(fixture("saelens/topk-rescale/cfg.json")).unwrap();
    assert!(
        cfg.contains(r#""rescale_acts_by_decoder_norm": true"#),
        "{cfg}"
    );
}

#[test]
fn saelens_topk_saved_by_its_trainer() {
    // TopKTrainingSAE.save_inference_model: rescale_acts_by_decoder_norm true, norms folded.
    check("saelens/topk-trained", None);
}

#[test]
fn saelens_jumprelu() {
    let sae = check("saelens/jumprelu", None);
    assert_eq!(sae.cfg.activation, Activation::JumpRelu);
}

#[test]
fn saelens_gated() {
    let sae = check("saelens/gated", None);
    assert_eq!(sae.cfg.activation, Activation::Gated);
    assert!(sae.gate.is_some());
}

#[test]
fn saelens_batchtopk_saved_as_jumprelu() {
    let sae = check("saelens/batchtopk", None);
    assert_eq!(sae.cfg.activation, Activation::JumpRelu);
    assert_eq!(sae.cfg.metadata.trained_arch.as_deref(), Some("batchtopk"));
}

#[test]
fn saelens_matryoshka_batchtopk_saved_as_jumprelu() {
    let sae = check("saelens/matryoshka", None);
    assert_eq!(sae.cfg.activation, Activation::JumpRelu);
    assert_eq!(
        sae.cfg.metadata.trained_arch.as_deref(),
        Some("matryoshka_batchtopk")
    );
}

#[test]
fn saelens_transcoder() {
    let sae = check("saelens/transcoder", None);
    assert_eq!((sae.d_in(), sae.d_out()), (16, 12));
    assert!(sae.cfg.is_transcoder() && sae.w_skip.is_none());
}

#[test]
fn saelens_skip_transcoder() {
    let sae = check("saelens/skip-transcoder", None);
    assert!(sae.w_skip.is_some());
    assert_eq!(sae.kind(), "standard skip transcoder");
}

#[test]
fn saelens_jumprelu_transcoder() {
    let sae = check("saelens/jumprelu-transcoder", None);
    assert_eq!(sae.kind(), "jumprelu transcoder");
}

#[test]
fn saelens_jumprelu_skip_transcoder() {
    let sae = check("saelens/jumprelu-skip-transcoder", None);
    assert_eq!(sae.kind(), "jumprelu skip transcoder");
}

#[test]
fn saelens_layer_norm_inputs() {
    let sae = check("saelens/layer-norm", None);
    assert_eq!(sae.cfg.normalize_activations, InputNorm::LayerNorm);
}

#[test]
fn saelens_constant_norm_rescale_inputs() {
    let sae = check("saelens/constant-norm-rescale", None);
    assert_eq!(
        sae.cfg.normalize_activations,
        InputNorm::ConstantNormRescale
    );
}

#[test]
fn saelens_expected_average_only_in_with_its_scaling_factor() {
    // The reference folds the factor of activation_scaler.json with SAELens' own
    // fold_activation_norm_scaling_factor; we fold it at load.
    let sae = check("saelens/expected-average", None);
    assert_eq!(sae.cfg.normalize_activations, InputNorm::None);
    assert_eq!(sae.cfg.metadata.extra["folded_scaling_factor"], 2.5);
}

#[test]
fn saelens_hook_z_attention_sae() {
    // SAELens ran on [rows, 4 heads, 4] and flattened head-major; our rows are that flattening.
    let sae = check("saelens/hook-z", None);
    assert_eq!(sae.cfg.reshape_activations, Reshape::HookZ);
}

#[test]
fn saelens_float16_and_bfloat16_weights() {
    let sae = check("saelens/float16", None);
    assert_eq!(sae.cfg.dtype, "float16");
    let sae = check("saelens/bfloat16", None);
    assert_eq!(sae.cfg.dtype, "bfloat16");
}

#[test]
fn saelens_pre6_flat_config() {
    let sae = check("saelens/flat-pre6", None);
    assert_eq!(sae.cfg.activation, Activation::TopK { k: 4 });
    assert_eq!(
        sae.cfg.metadata.hook_name.as_deref(),
        Some("blocks.2.hook_resid_pre")
    );
}

#[test]
fn sparsify_topk() {
    let sae = check("sparsify/topk", None);
    assert_eq!(sae.cfg.activation, Activation::TopK { k: 4 });
}

#[test]
fn sparsify_transcoder() {
    let sae = check("sparsify/transcoder", None);
    assert!(sae.cfg.is_transcoder() && !sae.cfg.apply_b_dec_to_input);
}

#[test]
fn sparsify_skip_transcoder() {
    let sae = check("sparsify/skip-transcoder", None);
    assert!(sae.cfg.is_transcoder() && sae.w_skip.is_some());
}

#[test]
fn sparsify_autoencoder_with_skip_connection() {
    let sae = check("sparsify/skip", None);
    assert!(!sae.cfg.is_transcoder() && sae.w_skip.is_some());
    assert_eq!(sae.d_sae(), 32, "expansion_factor 2 of d_in 16");
}

#[test]
fn sparsify_groupmax() {
    let sae = check("sparsify/groupmax", None);
    assert_eq!(sae.cfg.activation, Activation::GroupMax { k: 4 });
}

#[test]
fn sparsify_folder_of_several_hookpoints() {
    check("sparsify/multi", Some("layers.0"));
    check("sparsify/multi", Some("layers.1.mlp"));
    let err = Sae::load(&fixture("sparsify/multi")).unwrap_err();
    assert!(matches!(err, SaeError::HookRequired { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("--hook") && msg.contains("layers.0, layers.1.mlp"),
        "{msg}"
    );
    let err = Sae::load_hook(&fixture("sparsify/multi"), Some("layers.7")).unwrap_err();
    assert!(matches!(err, SaeError::NoSuchHook { .. }), "{err}");
}

/// An SAE `sae train` wrote, as SAELens read it.
fn check_ours(arch: &str) {
    let rel = format!("ours/{arch}");
    check(&rel, None);
    let r = reference(&fixture(&rel));
    assert_eq!(r.info["library"], "sae_lens");
    assert_eq!(
        r.info["sae_format_version"],
        sae_model::saelens::FORMAT_VERSION,
        "the fixture was made with another format version: rerun scripts/make-interop-fixtures.py"
    );
    // SAELens keeps the metadata we write (the hook name, on a copy with one set).
    assert_eq!(
        r.info["hook_read"],
        serde_json::json!("blocks.3.hook_resid_post"),
        "{rel}: {}",
        r.info
    );
    // The folder we committed is what our writer writes today.
    let sae = Sae::load(&fixture(&rel)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sae.save(dir.path(), None).unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cfg.json")).unwrap())
            .unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(&rel).join("cfg.json")).unwrap())
            .unwrap();
    assert_eq!(ours, theirs, "{rel}: cfg.json as we write it now");
}

#[test]
fn ours_topk_read_by_saelens() {
    check_ours("topk");
}

#[test]
fn ours_batchtopk_read_by_saelens() {
    check_ours("batchtopk");
}

#[test]
fn ours_relu_l1_read_by_saelens() {
    check_ours("relu-l1");
}

#[test]
fn ours_jumprelu_read_by_saelens() {
    check_ours("jumprelu");
}

/// Matryoshka BatchTopK is saved as JumpReLU with its widths in the metadata: SAELens opens it as a
/// JumpReLU SAE and reconstructs as we do.
#[test]
fn ours_matryoshka_read_by_saelens_as_jumprelu() {
    check_ours("matryoshka-batchtopk");
    let r = reference(&fixture("ours/matryoshka-batchtopk"));
    assert_eq!(r.info["class"], "JumpReLUSAE");
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("ours/matryoshka-batchtopk/cfg.json")).unwrap(),
    )
    .unwrap();
    assert!(
        cfg.to_string().contains("matryoshka_widths"),
        "the widths are recorded: {cfg}"
    );
}

#[test]
fn unsupported_saelens_architectures_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("saelens/standard/sae_weights.safetensors"),
        dir.path().join("sae_weights.safetensors"),
    )
    .unwrap();
    for arch in ["abstopk", "temporal", "matching_pursuit"] {
        let cfg = format!(
            r#"{{"architecture": "{arch}", "d_in": 16, "d_sae": 32, "k": 4, "metadata": {{}}}}"#
        );
        std::fs::write(dir.path().join("cfg.json"), cfg).unwrap();
        let err = Sae::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, SaeError::UnknownArchitecture { ref name, .. } if name == arch),
            "{err}"
        );
        assert!(err.to_string().contains("skip_transcoder"), "{err}");
    }
}

#[test]
fn every_library_sae_survives_our_save_and_load() {
    // Saved by our writer (SAELens layout, f32) and read back, each gives the library's outputs.
    for lib in ["saelens", "sparsify"] {
        let mut dirs: Vec<_> = std::fs::read_dir(fixture(lib))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("reference.json").exists())
            .collect();
        dirs.sort();
        for dir in dirs {
            let sae = Sae::load(&dir).unwrap();
            let tmp = tempfile::tempdir().unwrap();
            match sae.save(tmp.path(), None) {
                Ok(()) => {}
                // SAELens has no class for these: refused by name, never written wrongly.
                Err(SaeError::Invalid(msg))
                    if sae.cfg.is_transcoder()
                        || sae.w_skip.is_some()
                        || matches!(sae.cfg.activation, Activation::GroupMax { .. }) =>
                {
                    assert!(msg.contains("SAELens cannot represent"), "{msg}");
                    continue;
                }
                Err(e) => panic!("{}: {e}", dir.display()),
            }
            let back = Sae::load(tmp.path()).unwrap();
            let r = reference(&dir);
            let name = dir.display().to_string();
            assert_close(
                &format!("{name} re-saved encode"),
                &back.encode(&r.x).unwrap(),
                &r.acts,
            );
            assert_close(
                &format!("{name} re-saved forward"),
                &back.forward(&r.x).unwrap().1,
                &r.out,
            );
        }
    }
}
