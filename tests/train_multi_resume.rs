//! A sweep killed with SIGKILL and resumed with `--resume` ends with every SAE byte-identical to
//! the same SAE trained alone: the entry that had finished is skipped, and the others rejoin the
//! shared stream each at its own checkpoint (their checkpoint cadences differ).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{s as p, sae};

const SHARED: &str = "batch = 512\nd_sae = 256\nseed = 7\nlog_every = 10\n";

/// (name, steps, checkpoint_every, [arch] lines).
const ENTRIES: [(&str, u64, u64, &str); 3] = [
    ("short", 150, 40, "kind = \"topk\"\nk = 4\n"),
    ("topk", 1500, 70, "kind = \"topk\"\nk = 8\n"),
    ("jump", 1500, 50, "kind = \"jumprelu\"\ntarget_l0 = 4.0\n"),
];

/// The step recorded in a checkpoint's safetensors header.
fn checkpoint_step(dir: &Path) -> u64 {
    let bytes = std::fs::read(dir.join("checkpoint/checkpoint.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = header["__metadata__"]["sae_train"].as_str().unwrap();
    let meta: serde_json::Value = serde_json::from_str(meta).unwrap();
    meta["step"].as_u64().unwrap()
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("sae_weights.safetensors")).unwrap()
}

#[test]
fn a_killed_sweep_resumes_every_sae_exactly() {
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
    let mut sweep = format!("{SHARED}[arch]\nkind = \"topk\"\nk = 4\n");
    for (name, steps, every, arch) in ENTRIES {
        let arch = arch.trim().replace('\n', ", ");
        sweep += &format!(
            "\n[[sweep]]\nname = \"{name}\"\nsteps = {steps}\ncheckpoint_every = {every}\narch = {{ {arch} }}\n"
        );
    }
    let cfg = tmp.path().join("sweep.toml");
    std::fs::write(&cfg, sweep).unwrap();
    let out = tmp.path().join("sweep");
    let args = [
        "train",
        "--store",
        p(&store),
        "--out",
        p(&out),
        "--config",
        p(&cfg),
    ];

    // Kill the sweep once its short entry has finished and the others have checkpoints.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sae"))
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // (Finished: its weights saved and its checkpoint removed, the last thing a member does.)
    let short = out.join("short");
    while !short.join("sae_weights.safetensors").exists() || short.join("checkpoint").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the short entry never finished"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for name in ["topk", "jump"] {
        assert!(
            !out.join(name).join("sae_weights.safetensors").exists(),
            "{name} finished before the kill; the test proves nothing"
        );
    }
    let starts = [
        checkpoint_step(&out.join("topk")),
        checkpoint_step(&out.join("jump")),
    ];
    println!("killed with checkpoints at steps {starts:?}");
    let mut resume = args.to_vec();
    resume.push("--resume");
    let o = sae(&resume);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // The stream restarts at the earlier checkpoint and feeds the two unfinished SAEs.
    let from = starts.iter().min().unwrap();
    let todo: u64 = starts.iter().map(|s| 1500 - s).sum();
    let want = format!(
        "read {} batches of {} once for 2 SAEs ({todo} SAE steps)",
        1500 - from,
        p(&store)
    );
    assert!(
        err.contains(&want),
        "checkpoints at {starts:?}; want {want:?}: {err}"
    );
    assert!(err.contains("short: already finished"), "{err}");

    for (name, steps, _, arch) in ENTRIES {
        let alone = tmp.path().join(format!("alone-{name}"));
        let own = alone.with_extension("toml");
        std::fs::write(&own, format!("{SHARED}steps = {steps}\n[arch]\n{arch}")).unwrap();
        let o = sae(&[
            "train",
            "--store",
            p(&store),
            "--out",
            p(&alone),
            "--config",
            p(&own),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            weights(&out.join(name)) == weights(&alone),
            "{name}: the resumed sweep's SAE differs from the one trained alone"
        );
        let m = std::fs::read_to_string(out.join(name).join("metrics.jsonl")).unwrap();
        let logged: Vec<u64> = m
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            logged,
            (1..=steps / 10).map(|i| i * 10).collect::<Vec<_>>(),
            "{name}"
        );
    }
}
