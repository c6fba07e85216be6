//! `sae run` with `[harvest] stream = true`: SAEs trained straight from the forward pass (two hooks from
//! one pass) reach the quality of store-trained ones, only the bounded held-out store reaches the disk,
//! a run SIGKILLed mid-training resumes to bit-identical SAEs, and an option that cannot stream is one
//! clear error.

mod common;

use std::path::{Path, PathBuf};

use common::{kill_when, ok, read, run_cmd, s, MINILM};

const HOOKS: [&str; 2] = ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"];
const HELD_OUT: u64 = 2000;
const D: u64 = 384;

fn config(dir: &Path, name: &str, stream: bool, extra: &str) -> PathBuf {
    let harvest = match stream {
        true => format!("stream = true\nheld_out_tokens = {HELD_OUT}\n"),
        false => "dtype = \"f32\"\n".to_string(),
    };
    let text = format!(
        r#"out = "unused"
[model]
id = "{MINILM}"
offline = true
[harvest]
hooks = ["{}", "{}"]
corpus = ["{corpus}"]
ctx_len = 64
max_tokens = 6000
{harvest}{extra}
[train]
d_sae = 768
steps = 300
batch = 256
checkpoint_every = 40
[train.arch]
kind = "topk"
k = 8
[eval]
spliced = false
[report]
top = 3
"#,
        HOOKS[0],
        HOOKS[1],
        corpus = s(&common::corpus())
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn fvu(out: &Path, hook: &str) -> f64 {
    let p = out.join("sae").join(hook).join("eval.json");
    let v: serde_json::Value = serde_json::from_slice(&read(p)).unwrap();
    v["fvu"].as_f64().unwrap()
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        total += match p.is_dir() {
            true => bytes_under(&p),
            false => p.metadata().unwrap().len(),
        };
    }
    total
}

#[test]
fn streamed_saes_match_stored_ones_write_no_training_rows_resume_bit_identical_and_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let stored = tmp.path().join("stored");
    ok(run_cmd(&config(tmp.path(), "stored", false, ""), &stored)
        .output()
        .unwrap());
    let cfg = config(tmp.path(), "stream", true, "");
    let a = tmp.path().join("a");
    let err = String::from_utf8_lossy(&ok(run_cmd(&cfg, &a).output().unwrap()).stderr).into_owned();
    assert!(err.contains("[train (stream)] running"), "{err}");
    assert_eq!(refills(&err), 0, "{err}");
    quality_and_disk(&a, &stored);
    killed_and_resumed(&cfg, &a, &tmp.path().join("b"));
    sweep_shares_the_forward_pass(&cfg, &a, &tmp.path().join("c"));
}

/// Held-out FVU within a small factor of the store-trained SAE's; the stream starts after the
/// held-out store; only that store reaches the disk.
fn quality_and_disk(a: &Path, stored: &Path) {
    for hook in HOOKS {
        assert!(a.join("report").join(hook).join("index.html").is_file());
        let (fs, ft) = (fvu(a, hook), fvu(stored, hook));
        assert!(
            fs < 1.5 * ft + 0.02 && fs < 0.5,
            "{hook}: stream {fs} vs store {ft}"
        );
    }
    // The held-out store's cursor (where its harvest ended) is the stream's first piece's.
    let manifest = a.join("acts").join(HOOKS[0]).join("manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&read(manifest)).unwrap();
    let log = std::fs::read_to_string(a.join("sae").join("stream-pieces.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().nth(1).unwrap()).unwrap();
    let (held, start) = (&manifest["cursor"], &first["cursor"]);
    assert!(held["doc"].as_u64().unwrap() > 0, "{held}");
    assert_eq!(
        (&held["doc"], &held["window"]),
        (&start["doc"], &start["window"])
    );
    // Disk: the held-out stores (f32 rows, token/doc/position ids, manifest), not the budget:
    // 300 steps x 256 rows = 76,800 training rows per hook, ~13 epochs of the 6,000-row budget.
    let acts = bytes_under(&a.join("acts"));
    let bound = HOOKS.len() as u64 * HELD_OUT * (D * 4 + 12) + 64 * 1024;
    assert!(acts <= bound, "streamed acts/ holds {acts} bytes > {bound}");
    assert!(bytes_under(&stored.join("acts")) > 2 * acts);
    let sae_bytes = bytes_under(&a.join("sae"));
    assert!(sae_bytes < 8 << 20, "sae/ holds {sae_bytes} bytes");
}

/// Killed twice during the streamed training (after checkpoints), rerun to the end: bit-identical.
fn killed_and_resumed(cfg: &Path, a: &Path, b: &Path) {
    let ckpt = |dir: &Path| dir.join("checkpoint").join("checkpoint.safetensors");
    let first = b.join("sae").join(HOOKS[0]);
    kill_when(cfg, b, 300, || ckpt(&first).is_file());
    let lines = |p: PathBuf| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
    let metrics = first.join("metrics.jsonl");
    let seen = lines(metrics.clone());
    kill_when(cfg, b, 300, || {
        lines(metrics.clone()) > seen + 5 && ckpt(&first).is_file()
    });
    let err = String::from_utf8_lossy(&ok(run_cmd(cfg, b).output().unwrap()).stderr).into_owned();
    assert!(err.contains("[train (stream)] resuming"), "{err}");
    // The resumed stream refilled its buffers by running again the pieces still in them (which ones
    // exactly: the mixer's unit test), not by replaying the stream from its start.
    assert!(refills(&err) >= 1, "{err}");
    for hook in HOOKS {
        let w = |root: &Path| read(root.join("sae").join(hook).join("sae_weights.safetensors"));
        assert_eq!(
            w(a),
            w(b),
            "{hook}: the resumed stream must end bit-identical"
        );
    }
    let err = String::from_utf8_lossy(&ok(run_cmd(cfg, b).output().unwrap()).stderr).into_owned();
    assert!(err.contains("[train (stream)] up to date"), "{err}");
}

/// A sweep on the second hook, one entry with another batch size and step count (its own mixing
/// buffer, fed by the same forward pass): the entry with the shared settings, and the first hook's
/// SAE, end bit-identical to those of the run without the sweep.
fn sweep_shares_the_forward_pass(cfg: &Path, a: &Path, c: &Path) {
    let h = HOOKS[1];
    let t = format!("hook_train.\"{h}\"");
    let extra = format!(
        "[{t}]\nd_sae = 768\nsteps = 300\nbatch = 256\ncheckpoint_every = 40\n\
         [{t}.arch]\nkind = \"topk\"\nk = 8\n[[{t}.sweep]]\nname = \"same\"\n\
         [[{t}.sweep]]\nname = \"half\"\nbatch = 128\nsteps = 200\n"
    );
    let sweep = cfg.with_file_name("sweep.toml");
    std::fs::write(&sweep, std::fs::read_to_string(cfg).unwrap() + &extra).unwrap();
    ok(run_cmd(&sweep, c).output().unwrap());
    let w = |p: PathBuf| read(p.join("sae_weights.safetensors"));
    assert_eq!(
        w(a.join("sae").join(h)),
        w(c.join("sae").join(h).join("same"))
    );
    assert_eq!(
        w(a.join("sae").join(HOOKS[0])),
        w(c.join("sae").join(HOOKS[0]))
    );
    assert!(c
        .join("report")
        .join(h)
        .join("half")
        .join("index.html")
        .is_file());
}

/// Pieces run again to refill resumed buffers, from a run's `streamed ...` line.
fn refills(err: &str) -> u64 {
    let line = err
        .lines()
        .find(|l| l.starts_with("streamed "))
        .unwrap_or_else(|| panic!("{err}"));
    let rest = &line[line.find("pieces, ").unwrap() + "pieces, ".len()..];
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn an_option_that_cannot_stream_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "bad", true, "dtype = \"f16\"\n");
    let o = run_cmd(&cfg, &tmp.path().join("out")).output().unwrap();
    let err = common::one_line_error(&o);
    assert!(
        err.contains("dtype") && err.contains("stream = true"),
        "{err}"
    );
}
