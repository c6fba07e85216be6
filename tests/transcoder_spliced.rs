//! `sae eval --model` with a transcoder in the real SmolLM2-135M: its prediction replaces the output hook
//! (metadata.hook_name_out), the zero ablation zeroes that hook, and a transcoder whose output hook comes
//! before its input hook, or names no or an unknown output hook, is one clear error.

mod common;

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use common::{ok, one_line_error, s, sae_offline, SMOLLM2};
use sae_model::{Activation, Sae, SaeConfig};

const LAYER: usize = 3;

/// SmolLM2's block-3 MLP down projection [d_model, d_mlp], read from the GGUF file itself.
fn down_proj() -> Tensor {
    let snapshots =
        common::hf_cache().join("models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots");
    let snapshot = std::fs::read_dir(&snapshots)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let path = snapshot.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut file = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let name = format!("blk.{LAYER}.ffn_down.weight");
    let q = content.tensor(&mut file, &name, &Device::Cpu).unwrap();
    q.dequantize(&Device::Cpu).unwrap()
}

/// A skip-only transcoder `x W_skip` (its one latent never fires) from `hook` to `hook_out`, saved in `dir`.
fn save_skip_only(dir: &Path, w_skip: Tensor, hook: &str, hook_out: Option<&str>) {
    let (d_in, d_out) = w_skip.dims2().unwrap();
    let mut cfg = SaeConfig::new(d_in, 1, Activation::Relu);
    cfg.d_out = Some(d_out);
    cfg.apply_b_dec_to_input = false;
    cfg.metadata.hook_name = Some(hook.to_string());
    if let Some(h) = hook_out {
        cfg.metadata
            .extra
            .insert(sae_model::HOOK_NAME_OUT.into(), h.into());
    }
    let z = |shape: (usize, usize)| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let sae = Sae::with_parts(
        cfg,
        z((d_in, 1)),
        Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
        z((1, d_out)),
        Tensor::zeros(d_out, DType::F32, &Device::Cpu).unwrap(),
        None,
        None,
        Some(w_skip),
    )
    .unwrap();
    sae.save(dir, None).unwrap();
}

fn eval_json(sae: &Path, extra: &[&str]) -> serde_json::Value {
    let corpus = common::corpus().join("jargon.txt");
    let mut args = vec![
        "eval",
        "--sae",
        s(sae),
        "--model",
        SMOLLM2,
        "--corpus",
        s(&corpus),
    ];
    args.extend(["--max-tokens", "200", "--ctx-len", "64", "--json"]);
    args.extend(extra);
    serde_json::from_slice(&ok(sae_offline(&args)).stdout).unwrap()
}

fn f(m: &serde_json::Value, k: &str) -> f64 {
    m[k].as_f64().unwrap_or_else(|| panic!("{k} in {m}"))
}

#[test]
fn the_mlp_itself_as_a_transcoder_recovers_all_of_the_loss() {
    // mlp.hook_post W_down^T is exactly hook_mlp_out (Llama's MLP has no bias): the transcoder replaces
    // the MLP's output by the MLP's output, so the spliced model is the clean one.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tc");
    let (post, out) = (
        format!("blocks.{LAYER}.mlp.hook_post"),
        format!("blocks.{LAYER}.hook_mlp_out"),
    );
    save_skip_only(
        &dir,
        down_proj().t().unwrap().contiguous().unwrap(),
        &post,
        Some(&out),
    );
    let m = eval_json(&dir, &[]);
    assert_eq!(
        (m["hook"].as_str(), m["hook_out"].as_str()),
        (Some(post.as_str()), Some(out.as_str()))
    );
    assert_eq!(f(&m, "tokens"), 200.0, "{m}");
    assert!(
        f(&m, "ce_zero") > f(&m, "ce_clean") + 0.01,
        "zeroing the MLP must hurt: {m}"
    );
    assert!(f(&m, "delta_lm_loss").abs() < 1e-5, "{m}");
    assert!((f(&m, "ce_loss_recovered") - 1.0).abs() < 1e-5, "{m}");
    assert!(f(&m, "kl_sae") < 1e-6 && f(&m, "kl_zero") > 1e-3, "{m}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval_spliced.json")).unwrap())
            .unwrap();
    assert_eq!(written, m);

    // Without BOS no position is special, so the zero ablation of hook_mlp_out is an SAE at hook_mlp_out
    // whose reconstruction is 0 everywhere.
    let tc = eval_json(&dir, &["--no-bos"]);
    let zero_sae = tmp.path().join("zero");
    let d = 576;
    let zeros = |shape: (usize, usize)| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let mut cfg = SaeConfig::new(d, 1, Activation::Relu);
    cfg.metadata.hook_name = Some(out.clone());
    let z1 = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    let zd = Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap();
    Sae::new(cfg, zeros((d, 1)), z1, zeros((1, d)), zd, None)
        .unwrap()
        .save(&zero_sae, None)
        .unwrap();
    let sae = eval_json(&zero_sae, &["--no-bos"]);
    assert_eq!(
        sae["hook_out"],
        serde_json::Value::Null,
        "an SAE names one hook: {sae}"
    );
    assert!(
        (f(&tc, "ce_zero") - f(&sae, "ce_sae")).abs() < 1e-5,
        "{tc} vs {sae}"
    );
    assert!((f(&tc, "ce_clean") - f(&sae, "ce_clean")).abs() < 1e-9);
}

#[test]
fn transcoder_hooks_out_of_order_or_missing_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = common::corpus().join("jargon.txt");
    let eye = Tensor::eye(576, DType::F32, &Device::Cpu).unwrap();
    let err_of = |name: &str, hook: &str, hook_out: Option<&str>, extra: &[&str]| {
        let dir = tmp.path().join(name);
        save_skip_only(&dir, eye.clone(), hook, hook_out);
        let mut args = vec![
            "eval",
            "--sae",
            s(&dir),
            "--model",
            SMOLLM2,
            "--corpus",
            s(&corpus),
        ];
        args.extend(extra);
        one_line_error(&sae_offline(&args))
    };
    let (mlp_in, mlp_out) = ("blocks.3.ln2.hook_normalized", "blocks.3.hook_mlp_out");
    // The output hook is computed before the input hook.
    let err = err_of("reversed", mlp_out, Some(mlp_in), &[]);
    assert!(
        err.contains(mlp_in) && err.contains(mlp_out) && err.contains("before"),
        "{err}"
    );
    let err = err_of("earlier_block", mlp_in, Some("blocks.2.hook_mlp_out"), &[]);
    assert!(
        err.contains("blocks.2.hook_mlp_out") && err.contains("before"),
        "{err}"
    );
    // An unknown output hook is named with the valid ones.
    let err = err_of("unknown", mlp_in, Some("blocks.3.hook_mlp_outt"), &[]);
    assert!(
        err.contains("blocks.3.hook_mlp_outt") && err.contains("blocks.{0..29}.hook_mlp_out"),
        "{err}"
    );
    // No output hook in cfg.json, and none given.
    let err = err_of("no_out", mlp_in, None, &[]);
    assert!(
        err.contains("hook_name_out") && err.contains("--hook-out"),
        "{err}"
    );
    // --hook-out decides over the metadata, and is checked the same way.
    let err = err_of(
        "flag",
        mlp_in,
        Some(mlp_out),
        &["--hook-out", "blocks.3.hook_attn_out"],
    );
    assert!(
        err.contains("blocks.3.hook_attn_out") && err.contains("before"),
        "{err}"
    );
    // Widths: this transcoder reads 576 values, the MLP's hidden layer has 1536.
    let err = err_of(
        "wide",
        mlp_in,
        Some(mlp_out),
        &["--hook", "blocks.3.mlp.hook_post"],
    );
    assert!(err.contains("576") && err.contains("1536"), "{err}");
}
