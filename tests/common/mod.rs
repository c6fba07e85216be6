//! Helpers shared by the end-to-end tests: running the `sae` binary, where the packaged models and
//! the corpus are (scripts/fetch-models.sh, scripts/fetch-corpus.sh), and checking outcomes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";
pub const SMOLLM2: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `SAE_HF_CACHE`, else the cache scripts/fetch-models.sh fills; fails if the models are not there.
pub fn hf_cache() -> PathBuf {
    let p = std::env::var_os("SAE_HF_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/huggingface/hub"));
    assert!(
        p.join("models--sentence-transformers--all-MiniLM-L6-v2")
            .is_dir(),
        "no models in {}: run scripts/fetch-models.sh",
        p.display()
    );
    p
}

/// `SAE_CORPUS`, else the folder scripts/fetch-corpus.sh fills; fails if it is not there.
pub fn corpus() -> PathBuf {
    let p = std::env::var_os("SAE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/corpus"));
    assert!(
        p.join("jargon.txt").is_file(),
        "no corpus in {}: run scripts/fetch-corpus.sh",
        p.display()
    );
    p
}

/// Runs `sae ARGS`.
pub fn sae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sae"))
        .args(args)
        .output()
        .expect("run the sae binary")
}

/// Runs `sae ARGS` offline against the packaged models' cache.
pub fn sae_offline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sae"))
        .args(args)
        .env("SAE_HF_CACHE", hf_cache())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run the sae binary")
}

/// Asserts success (showing stderr otherwise) and passes the output on.
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts a failure reported as one `error: ...` line without a panic; returns stderr.
pub fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure, stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}

/// A path as the &str a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `sae run CFG --out OUT` offline against the packaged models' cache, not yet started.
pub fn run_cmd(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sae"));
    c.args(["run", s(cfg), "--out", s(out)])
        .env("SAE_HF_CACHE", hf_cache())
        .env("HF_HUB_OFFLINE", "1");
    c
}

/// Starts `sae run CFG --out OUT` and SIGKILLs it once `ready` holds (or it ends by itself, or
/// `limit_s` seconds pass).
pub fn kill_when(cfg: &Path, out: &Path, limit_s: u64, ready: impl Fn() -> bool) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = run_cmd(cfg, out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready() && start.elapsed() < Duration::from_secs(limit_s) {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The bytes of a file, panicking with its path.
pub fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The tests' synthetic benchmark store: 256 features in 64 dims, each firing with probability 0.01
/// (2.56 per row on average), 300k rows of which 45k are held out, seed 1; `extra` flags appended
/// (e.g. `--parents 16 --children 4` for hierarchical features).
pub fn synth_benchmark(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "synth",
        "--features",
        "256",
        "--dim",
        "64",
        "--firing-prob",
        "0.01",
        "--samples",
        "300000",
        "--eval-frac",
        "0.15",
        "--seed",
        "1",
        "--out",
        s(dir),
    ];
    args.extend_from_slice(extra);
    ok(sae(&args));
}

/// The tiny GPT-2 fixture copied with a word-level tokenizer: words w0..w59, [UNK] = 60.
pub fn gpt2_with_tokenizer(dir: &Path) {
    let src = repo().join("tests/fixtures/parity/gpt2");
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> = (0..60)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .chain([("[UNK]".to_string(), serde_json::json!(60))])
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
}
