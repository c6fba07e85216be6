//! One module per subcommand: clap `Args` plus `run`.

pub mod attribute;
pub mod attribute_html;
pub mod attribute_input;
pub mod bench;
pub mod bench_harvest;
pub mod bench_train;
pub mod bench_train_store;
pub mod eval;
pub mod eval_spliced;
pub mod export;
pub mod fetch;
pub mod harvest;
pub mod hooks;
pub mod import;
pub mod inspect;
pub mod report;
pub mod report_lens;
pub mod run;
pub mod run_config;
pub mod run_stream;
pub mod run_summary;
pub mod synth;
pub mod toy;
pub mod train;

/// A store dtype flag (`--dtype f32|f16|bf16`).
fn parse_dtype(s: &str) -> Result<sae_store::DType, String> {
    use sae_store::DType;
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(format!(
            "unknown dtype {other:?} (expected f32, f16 or bf16)"
        )),
    }
}
