//! Several SAEs from one read of the data: a `[[sweep]]` of SAEs on one store draws each batch
//! once and every SAE ends byte-identical to the same SAE trained alone; one SAE per hook store of
//! a harvest folder, and per store and sweep entry, likewise.

mod common;

use std::path::Path;

use common::{s as p, sae};

const SHARED: &str = "steps = 200\nbatch = 512\nd_sae = 256\nseed = 7\nlog_every = 50\n";

/// (name, the entry's lines in the sweep, the same SAE's own config after SHARED).
const ENTRIES: [(&str, &str, &str); 3] = [
    ("k4", "", "[arch]\nkind = \"topk\"\nk = 4\n"),
    (
        "btk8",
        "arch = { kind = \"batchtopk\", k = 8 }\n",
        "[arch]\nkind = \"batchtopk\"\nk = 8\n",
    ),
    (
        "l1-narrow",
        "arch = { kind = \"relu-l1\" }\nd_sae = 128\n",
        "[arch]\nkind = \"relu-l1\"\n",
    ),
];

fn synth(dir: &Path, seed: &str) {
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
        "--shard-rows",
        "4096",
        "--seed",
        seed,
        "--out",
        p(dir),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sweep_file(dir: &Path) -> std::path::PathBuf {
    let mut text = format!("{SHARED}[arch]\nkind = \"topk\"\nk = 4\n");
    for (name, lines, _) in ENTRIES {
        text += &format!("\n[[sweep]]\nname = \"{name}\"\n{lines}");
    }
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Trains the entry `i` alone on `store` into `out` and returns its weights.
fn alone(store: &Path, out: &Path, i: usize) -> Vec<u8> {
    let (_, _, own) = ENTRIES[i];
    let shared = match i {
        2 => SHARED.replace("d_sae = 256", "d_sae = 128"),
        _ => SHARED.to_string(),
    };
    let cfg = out.with_extension("toml");
    std::fs::write(&cfg, format!("{shared}{own}")).unwrap();
    let o = sae(&[
        "train",
        "--store",
        p(store),
        "--out",
        p(out),
        "--config",
        p(&cfg),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out.join("sae_weights.safetensors")).unwrap()
}

/// The `read N batches of STORE once for M SAEs (S SAE steps)` lines: (store, N, M, S).
fn reads(stderr: &str) -> Vec<(String, u64, u64, u64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("read ")?;
            let (n, rest) = rest.split_once(" batches of ")?;
            let (store, rest) = rest.split_once(" once for ")?;
            let (m, rest) = rest.split_once(" SAEs (")?;
            let (s, _) = rest.split_once(" SAE steps)")?;
            Some((
                store.into(),
                n.parse().ok()?,
                m.parse().ok()?,
                s.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn a_sweep_reads_each_batch_once_and_matches_each_sae_trained_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    synth(&store, "1");
    let out = tmp.path().join("sweep");
    let cfg = sweep_file(tmp.path());
    let o = sae(&[
        "train",
        "--store",
        p(&store),
        "--out",
        p(&out),
        "--config",
        p(&cfg),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // One stream: 200 batches drawn for 3 SAEs, each of which stepped on all of them.
    assert_eq!(reads(&err), [(p(&store).to_string(), 200, 3, 600)], "{err}");
    for (i, (name, _, _)) in ENTRIES.iter().enumerate() {
        let dir = out.join(name);
        let swept = std::fs::read(dir.join("sae_weights.safetensors")).unwrap();
        let own = alone(&store, &tmp.path().join(format!("alone-{name}")), i);
        assert!(
            swept == own,
            "{name}: the swept SAE differs from the one trained alone"
        );
        let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 4, "{name}: metrics.jsonl");
    }
    let cfg_json = std::fs::read_to_string(out.join("l1-narrow/cfg.json")).unwrap();
    assert!(cfg_json.contains("\"d_sae\": 128") || cfg_json.contains("\"d_sae\":128"));
    // Nothing is left locked, and a second run into the finished sweep is refused.
    assert!(!out.join(".sae.lock").exists() && !out.join("k4/.sae.lock").exists());
    let o = sae(&[
        "train",
        "--store",
        p(&store),
        "--out",
        p(&out),
        "--config",
        p(&cfg),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a trained SAE"));
}

#[test]
fn one_sae_per_hook_store_and_per_sweep_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let harvest = tmp.path().join("acts");
    let hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"];
    for (h, seed) in hooks.iter().zip(["2", "3"]) {
        synth(&harvest.join(h), seed);
    }
    // A harvest folder: one SAE per hook store, into OUT/<hook>/.
    let out = tmp.path().join("per-hook");
    let o = sae(&[
        "train",
        "--store",
        p(&harvest),
        "--out",
        p(&out),
        "--steps",
        "200",
        "--batch",
        "512",
        "--d-sae",
        "256",
        "--seed",
        "7",
        "--k",
        "4",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let r = reads(&err);
    assert_eq!(r.len(), 2, "{err}");
    assert!(r.iter().all(|x| (x.1, x.2, x.3) == (200, 1, 200)), "{err}");
    for (h, _) in hooks.iter().zip(0..) {
        let got = std::fs::read(out.join(h).join("sae_weights.safetensors")).unwrap();
        let own = alone(&harvest.join(h), &tmp.path().join(format!("alone-{h}")), 0);
        assert!(got == own, "{h}: differs from its SAE trained alone");
    }
    // Several stores and a sweep: OUT/<store>/<entry>/, one read of each store for its entries.
    let out = tmp.path().join("grid");
    let cfg = sweep_file(tmp.path());
    let (a, b) = (harvest.join(hooks[0]), harvest.join(hooks[1]));
    let o = sae(&[
        "train",
        "--store",
        p(&a),
        "--store",
        p(&b),
        "--out",
        p(&out),
        "--config",
        p(&cfg),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let r = reads(&err);
    assert_eq!(r.len(), 2, "{err}");
    assert!(r.iter().all(|x| (x.1, x.2, x.3) == (200, 3, 600)), "{err}");
    let got = std::fs::read(out.join(hooks[1]).join("btk8/sae_weights.safetensors")).unwrap();
    let own = alone(&b, &tmp.path().join("alone-b-btk8"), 1);
    assert!(
        got == own,
        "store b, btk8: differs from its SAE trained alone"
    );
}
