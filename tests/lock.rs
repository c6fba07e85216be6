//! One writer per output folder: while `sae train` writes into a folder, a second `sae train` into
//! it is refused with an error naming the first one's pid; the lock file a SIGKILLed run leaves
//! behind (its pid dead) does not block the resumed run.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{s as p, sae};

fn train_args<'a>(store: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--store",
        store,
        "--out",
        out,
        "--arch",
        "topk",
        "--k",
        "4",
        "--d-sae",
        "256",
        "--steps",
        "2000",
        "--batch",
        "512",
        "--seed",
        "3",
        "--checkpoint-every",
        "40",
    ]
}

#[test]
fn a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over() {
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
        "30000",
        "--out",
        p(&store),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("sae");
    let mut first = Command::new(env!("CARGO_BIN_EXE_sae"))
        .args(train_args(p(&store), p(&out)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    let ckpt = out.join("checkpoint").join("checkpoint.safetensors");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A second writer, with or without --resume, is refused while the first runs.
    let mut resume = train_args(p(&store), p(&out));
    resume.push("--resume");
    for args in [train_args(p(&store), p(&out)), resume.clone()] {
        let o = sae(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "a second writer ran: {err}");
        assert!(
            err.contains(&format!("pid {pid}")),
            "the holder's pid is not named: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        !out.join("sae_weights.safetensors").exists(),
        "the first run finished before it was killed; the test proves nothing"
    );
    // SIGKILL left its lock behind, naming a pid that is gone; the resumed run takes it over.
    let lock = std::fs::read_to_string(out.join(".sae.lock")).unwrap();
    let holder: serde_json::Value = serde_json::from_str(&lock).unwrap();
    assert_eq!(holder["pid"].as_u64(), Some(pid as u64));
    let o = sae(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("sae_weights.safetensors").exists());
    assert!(
        !out.join(".sae.lock").exists(),
        "the finished run left its lock"
    );
}
