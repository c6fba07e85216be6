//! A training run killed with SIGKILL after its first checkpoint and resumed with `--resume` ends with
//! weights bit-identical to an uninterrupted run of the same seed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{s as p, sae};

fn train_args<'a>(store: &'a str, out: &'a str, arch: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--store",
        store,
        "--out",
        out,
        "--arch",
        arch,
        "--k",
        "4",
        "--d-sae",
        "256",
        "--steps",
        "1500",
        "--batch",
        "512",
        "--seed",
        "7",
        "--checkpoint-every",
        "40",
    ]
}

/// TopK (sparse step, AuxK) and JumpReLU (the threshold step, which picks its path from each batch).
#[test]
fn killed_and_resumed_run_matches_an_uninterrupted_one() {
    for arch in ["topk", "jumprelu"] {
        resume_matches(arch);
    }
}

fn resume_matches(arch: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let o = sae(&[
        "synth",
        "--features",
        "128",
        "--dim",
        "32",
        "--firing-prob",
        "0.02",
        "--samples",
        "60000",
        "--shard-rows",
        "8192",
        "--out",
        p(&store),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    // Run A: start, wait for the first checkpoint, SIGKILL, resume.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sae"))
        .args(train_args(p(&store), p(&a), arch))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = a.join("checkpoint").join("checkpoint.safetensors");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !a.join("sae_weights.safetensors").exists(),
        "the run finished before it was killed; the test proves nothing"
    );
    // Without --resume the interrupted folder is refused (nothing is overwritten).
    let o = sae(&train_args(p(&store), p(&a), arch));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    let mut args = train_args(p(&store), p(&a), arch);
    args.push("--resume");
    let o = sae(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Run B: uninterrupted.
    let o = sae(&train_args(p(&store), p(&b), arch));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let wa = std::fs::read(a.join("sae_weights.safetensors")).unwrap();
    let wb = std::fs::read(b.join("sae_weights.safetensors")).unwrap();
    assert!(
        wa == wb,
        "{arch}: resumed weights differ from the uninterrupted run"
    );
    let sa = std::fs::read(a.join("sparsity.safetensors")).unwrap();
    let sb = std::fs::read(b.join("sparsity.safetensors")).unwrap();
    assert!(sa == sb, "resumed density differs");
    // metrics.jsonl holds each logged step exactly once.
    let m = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = m
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=150).map(|i| i * 10).collect::<Vec<_>>());
}
