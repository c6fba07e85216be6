//! `sae run`: one config from model to dashboard; a rerun skips finished stages, a changed section
//! redoes only its stage and those after it, and a run killed (SIGKILL) mid-stage and rerun ends with
//! the same outputs as one never interrupted.

mod common;

use std::path::{Path, PathBuf};

use common::{kill_when, ok, read, run_cmd, s, MINILM};

const HOOK: &str = "blocks.1.hook_resid_post";

fn config(dir: &Path, top: usize) -> PathBuf {
    let text = format!(
        r#"out = "unused"
[model]
id = "{MINILM}"
offline = true
[harvest]
hooks = ["{HOOK}"]
neurons = true
corpus = ["{corpus}"]
ctx_len = 64
max_tokens = 6000
dtype = "f16"
[train]
d_sae = 768
steps = 400
batch = 256
checkpoint_every = 50
[train.arch]
kind = "topk"
k = 8
[report]
top = {top}
max_rows = 6000
"#,
        corpus = s(&common::corpus())
    );
    let path = dir.join(format!("run-{top}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr_of(cfg: &Path, out: &Path) -> String {
    let o = ok(run_cmd(cfg, out).output().unwrap());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_killed_run_resumes_to_the_same_outputs_and_reruns_skip_what_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 3);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let err = stderr_of(&cfg, &a);
    for stage in ["harvest", "train", "eval", "report"] {
        assert!(err.contains(&format!("[{stage}")), "{stage}: {err}");
    }
    assert!(a.join("report").join(HOOK).join("index.html").is_file());

    // Killed during the harvest (its store has a shard), then during training (after a checkpoint).
    let store = b.join("acts").join(HOOK);
    kill_when(&cfg, &b, 120, || store.join("manifest.json").is_file());
    let ckpt = b.join("sae").join(HOOK).join("checkpoint");
    kill_when(&cfg, &b, 120, || ckpt.is_dir());
    stderr_of(&cfg, &b);
    let sae = |root: &Path| root.join("sae").join(HOOK);
    assert_eq!(
        read(sae(&a).join("sae_weights.safetensors")),
        read(sae(&b).join("sae_weights.safetensors")),
        "the killed and resumed run must end bit-identical"
    );
    assert_eq!(
        read(sae(&a).join("eval.json")),
        read(sae(&b).join("eval.json"))
    );

    // Nothing left to do; then only the report settings change: only the report is redone.
    let err = stderr_of(&cfg, &b);
    assert_eq!(err.matches("up to date, skipped").count(), 4, "{err}");
    let err = stderr_of(&config(tmp.path(), 2), &b);
    assert!(
        err.contains("[report blocks.1.hook_resid_post] running"),
        "{err}"
    );
    assert_eq!(err.matches("up to date, skipped").count(), 3, "{err}");
}

#[test]
fn a_second_run_into_the_same_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let _lock = sae_store::OutputLock::acquire(&out, "sae run").unwrap();
    let o = run_cmd(&config(tmp.path(), 3), &out).output().unwrap();
    let err = common::one_line_error(&o);
    assert!(err.contains(&std::process::id().to_string()), "{err}");
}

#[test]
fn a_sweep_in_the_training_config_gives_one_evaluated_and_reported_sae_per_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(config(tmp.path(), 3)).unwrap();
    let cfg = tmp.path().join("sweep.toml");
    let sweep =
        "[[train.sweep]]\nname = \"k4\"\narch = { k = 4 }\n[[train.sweep]]\nname = \"k8\"\n";
    let text = base.replace("[report]", &format!("{sweep}[report]"));
    std::fs::write(&cfg, text.replace("steps = 400", "steps = 60")).unwrap();
    let out = tmp.path().join("out");
    let o = ok(run_cmd(&cfg, &out).output().unwrap());
    let table = String::from_utf8_lossy(&o.stdout);
    for name in ["k4", "k8"] {
        let sae = out.join("sae").join(HOOK).join(name);
        assert!(sae.join("sae_weights.safetensors").is_file(), "{name}");
        assert!(sae.join("eval.json").is_file(), "{name}");
        let report = out.join("report").join(HOOK).join(name).join("index.html");
        assert!(report.is_file(), "{name}");
        assert!(table.contains(&format!("{HOOK}/{name}")), "{table}");
    }
    let l0 = |name: &str| -> f64 {
        let p = out.join("sae").join(HOOK).join(name).join("eval.json");
        let v: serde_json::Value = serde_json::from_slice(&read(p)).unwrap();
        v["l0"].as_f64().unwrap()
    };
    assert!((l0("k4") - 4.0).abs() < 0.5 && (l0("k8") - 8.0).abs() < 0.5);
    let err = stderr_of(&cfg, &out);
    assert_eq!(err.matches("up to date, skipped").count(), 6, "{err}");
}
