//! `sae harvest` / `sae hooks` on bad input: one clear message each, no panic, nothing half-written.

mod common;

use std::path::{Path, PathBuf};

use common::{hf_cache, repo, s, MINILM};

fn sae(args: &[&str]) -> std::process::Output {
    common::sae_offline(args)
}

/// Runs, expects failure without a panic, returns stderr.
fn fails(args: &[&str]) -> String {
    let out = sae(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure, stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn small_corpus(dir: &Path) -> PathBuf {
    let c = dir.join("corpus");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("a.txt"),
        "The quick brown fox jumps over the lazy dog.",
    )
    .unwrap();
    c
}

/// A copy of a parity fixture model folder, to break.
fn tiny_copy(name: &str, dir: &Path) -> PathBuf {
    let src = repo().join("tests/fixtures/parity").join(name);
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

#[test]
fn unknown_hook_lists_the_valid_ones_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let corpus = small_corpus(tmp.path());
    let err = fails(&[
        "harvest",
        "--model",
        MINILM,
        "--hook",
        "blocks.1.resid",
        "--corpus",
        s(&corpus),
        "--out",
        s(&out),
    ]);
    assert!(err.contains("unknown hook `blocks.1.resid`"), "{err}");
    assert!(
        err.contains("blocks.{0..5}.hook_resid_post")
            && err.contains("blocks.{0..5}.mlp.hook_post"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn layer_out_of_range_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let corpus = small_corpus(tmp.path());
    let err = fails(&[
        "harvest",
        "--model",
        MINILM,
        "--hook",
        "blocks.6.hook_resid_post",
        "--corpus",
        s(&corpus),
        "--out",
        s(&out),
    ]);
    assert!(
        err.contains("layer 6") && err.contains("6 layers (0..=5)"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn missing_model_offline_fails_fast_naming_cache_and_fix() {
    let start = std::time::Instant::now();
    let err = fails(&["hooks", "--model", "nobody/no-such-model", "--offline"]);
    assert!(start.elapsed().as_secs() < 10);
    assert!(err.contains("nobody/no-such-model"), "{err}");
    assert!(err.contains(s(&hf_cache())), "{err}");
    assert!(
        err.contains("scripts/fetch-models.sh") && err.contains("sae fetch"),
        "{err}"
    );
}

#[test]
fn corrupt_safetensors_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_copy("gpt2", tmp.path());
    let weights = model.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&["hooks", "--model", s(&model)]);
    assert!(
        err.contains("bad weights") && err.contains("model.safetensors"),
        "{err}"
    );
    std::fs::write(&weights, b"not a safetensors file at all").unwrap();
    let err = fails(&["hooks", "--model", s(&model)]);
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn unsupported_architecture_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_copy("gpt2", tmp.path());
    std::fs::write(
        model.join("config.json"),
        r#"{"model_type": "mamba", "architectures": ["MambaForCausalLM"]}"#,
    )
    .unwrap();
    let err = fails(&["hooks", "--model", s(&model)]);
    assert!(err.contains("unsupported architecture `mamba`"), "{err}");
}

#[test]
fn empty_corpus_is_an_error_and_leaves_no_store() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let corpus = tmp.path().join("empty");
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(corpus.join("blank.txt"), "   \n").unwrap();
    std::fs::write(corpus.join("none.jsonl"), "").unwrap();
    let err = fails(&[
        "harvest",
        "--model",
        MINILM,
        "--hook",
        "blocks.0.hook_resid_post",
        "--corpus",
        s(&corpus),
        "--out",
        s(&out),
    ]);
    assert!(err.contains("corpus is empty"), "{err}");
    assert!(!out.join("blocks.0.hook_resid_post").exists());
}

#[test]
fn non_utf8_file_is_skipped_with_a_warning_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let corpus = small_corpus(tmp.path());
    std::fs::write(corpus.join("b.txt"), [0x66, 0x6f, 0xff, 0xfe, 0x6f]).unwrap();
    let o = sae(&[
        "harvest",
        "--model",
        MINILM,
        "--hook",
        "blocks.0.hook_resid_post",
        "--corpus",
        s(&corpus),
        "--out",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: skipping") && err.contains("b.txt") && err.contains("UTF-8"),
        "{err}"
    );
    let store = sae_store::Store::open(&out.join("blocks.0.hook_resid_post")).unwrap();
    // "The quick brown fox jumps over the lazy dog." is 10 WordPiece tokens for MiniLM.
    assert_eq!(store.manifest().rows, 10);
}

#[test]
fn a_second_harvest_into_a_locked_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let corpus = small_corpus(tmp.path());
    // This test process holds the folder, as a running harvest would.
    let lock = sae_store::OutputLock::acquire(&out, "sae harvest").unwrap();
    let args = [
        "harvest",
        "--model",
        MINILM,
        "--hook",
        "blocks.1.hook_resid_post",
        "--corpus",
        s(&corpus),
        "--out",
        s(&out),
    ];
    let err = fails(&args);
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    assert!(!out.join("blocks.1.hook_resid_post").exists(), "{err}");
    drop(lock);
    let ok = sae(&args);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
