//! `sae import`: arrays numpy and torch wrote (tests/fixtures/interop/import, made by
//! scripts/make-interop-fixtures.py; values.safetensors holds the same values as f32)
//! become stores with exactly those rows and token ids; bad inputs are one clear error; an
//! interrupted import resumes; and an imported store trains exactly like the store it came from
//! (a synthetic one, and a MiniLM harvest, whose import `sae report` then reads like the harvest).

mod common;

use std::path::{Path, PathBuf};

use common::sae;
use sae_model::weights::WeightFile;
use sae_store::{DType, Source, Split, Store};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop/import")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Tensor `name` of values.safetensors as f32.
fn values(name: &str) -> Vec<f32> {
    let file = WeightFile::read(&fixture("values.safetensors")).unwrap();
    let shape = file.shape(name).unwrap();
    file.f32(name, &shape).unwrap()
}

/// Every row of a store, in order, with its token ids.
fn rows(dir: &Path) -> (Vec<f32>, Option<Vec<u32>>) {
    let store = Store::open(dir).unwrap();
    let (mut acts, mut ids) = (Vec::new(), Vec::new());
    for split in [Split::Train, Split::Eval] {
        for c in store.chunks(split) {
            let c = c.unwrap();
            acts.extend(c.acts);
            ids.extend(c.token_ids.unwrap_or_default());
        }
    }
    (acts, store.manifest().has_token_ids.then_some(ids))
}

fn import(args: &[&str]) -> std::process::Output {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    sae(&all)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The one-line error of a failed run.
fn err(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    msg
}

#[test]
fn numpy_files_with_token_ids_become_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("store");
    let (a, b, ids) = (
        fixture("acts-f16.npy"),
        fixture("acts3-f32.npy"),
        fixture("ids-i64.npy"),
    );
    // 40 f16 rows, then a [3, 5, 16] f32 array as 15 rows: mixed dtypes give an f32 store.
    let o = import(&[
        "--input",
        s(&a),
        "--input",
        s(&b),
        "--out",
        s(&out),
        "--eval-rows",
        "11",
        "--shard-rows",
        "16",
    ]);
    ok(&o);
    let store = Store::open(&out).unwrap();
    let m = store.manifest();
    assert_eq!(
        (m.d, m.rows, m.eval_rows, m.dtype),
        (16, 55, 11, DType::F32)
    );
    assert_eq!(m.shards.len(), 4, "shards of 16 rows");
    let Source::Import(src) = &m.source else {
        panic!("{:?}", m.source)
    };
    assert_eq!(src.files.len(), 2);
    assert_eq!(
        (src.files[0].dtype.as_str(), &src.files[0].shape[..]),
        ("<f2", &[40, 16][..])
    );
    assert_eq!(src.files[1].shape, vec![3, 5, 16]);
    assert_eq!(src.files[1].path, s(&b));
    let mut want = values("acts");
    want.extend(values("acts3"));
    assert_eq!(rows(&out).0, want);

    let out2 = tmp.path().join("with-ids");
    ok(&import(&[
        "--input",
        s(&a),
        "--token-ids",
        s(&ids),
        "--out",
        s(&out2),
        "--hook",
        "blocks.0.hook_resid_post",
    ]));
    let store = Store::open(&out2).unwrap();
    assert_eq!(
        store.manifest().dtype,
        DType::F16,
        "an all-f16 input stays f16"
    );
    assert_eq!(store.manifest().eval_rows, 2, "5% of 40");
    let (acts, got_ids) = rows(&out2);
    assert_eq!(acts, values("acts"));
    let want_ids: Vec<u32> = values("ids").iter().map(|&v| v as u32).collect();
    assert_eq!(got_ids.unwrap(), want_ids);
}

#[test]
fn safetensors_tensor_and_token_ids_by_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("store");
    let f = fixture("acts-bf16.safetensors");
    let o = import(&[
        "--input",
        s(&f),
        "--key",
        "acts",
        "--token-ids-key",
        "tokens",
        "--out",
        s(&out),
        "--dtype",
        "f32",
    ]);
    ok(&o);
    let (acts, ids) = rows(&out);
    assert_eq!(acts, values("bf16"));
    assert_eq!(ids.unwrap(), (0..24).map(|i| i * 7).collect::<Vec<u32>>());
    assert_eq!(Store::open(&out).unwrap().manifest().dtype, DType::F32);
}

#[test]
fn bad_inputs_are_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let f = fixture("acts-bf16.safetensors");
    let msg = err(&import(&["--input", s(&f), "--out", &out("a")]));
    assert!(
        msg.contains("several tensors") && msg.contains("acts, tokens"),
        "{msg}"
    );
    let msg = err(&import(&[
        "--input",
        s(&f),
        "--key",
        "x",
        "--out",
        &out("b"),
    ]));
    assert!(msg.contains("no tensor \"x\""), "{msg}");
    let msg = err(&import(&[
        "--input",
        s(&f),
        "--key",
        "tokens",
        "--out",
        &out("c"),
    ]));
    assert!(msg.contains("floating-point activations"), "{msg}");
    let ids = fixture("ids-i64.npy");
    let msg = err(&import(&["--input", s(&ids), "--out", &out("d")]));
    assert!(msg.contains("floating-point activations"), "{msg}");
    // Token ids for 40 rows given for the 15 rows of the 3-D array.
    let a3 = fixture("acts3-f32.npy");
    let msg = err(&import(&[
        "--input",
        s(&a3),
        "--token-ids",
        s(&ids),
        "--out",
        &out("e"),
    ]));
    assert!(msg.contains("token ids") && msg.contains("40"), "{msg}");

    let d8 = tmp.path().join("d8.npy");
    write_npy(&d8, "<f4", &[2, 8], &[0u8; 64]);
    let a = fixture("acts-f16.npy");
    let msg = err(&import(&[
        "--input",
        s(&a),
        "--input",
        s(&d8),
        "--out",
        &out("f"),
    ]));
    assert!(msg.contains("width 8") && msg.contains("width 16"), "{msg}");

    let mut nan = vec![0u8; 3 * 4 * 4];
    nan[(4 + 2) * 4..(4 + 3) * 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let p = tmp.path().join("nan.npy");
    write_npy(&p, "<f4", &[3, 4], &nan);
    let msg = err(&import(&["--input", s(&p), "--out", &out("g")]));
    assert!(
        msg.contains("non-finite") && msg.contains("row 1, column 2"),
        "{msg}"
    );

    let short = tmp.path().join("short.npy");
    write_npy(&short, "<f4", &[10, 4], &[0u8; 40]);
    let msg = err(&import(&["--input", s(&short), "--out", &out("h")]));
    assert!(msg.contains("truncated"), "{msg}");
    let big_endian = tmp.path().join("be.npy");
    write_npy(&big_endian, ">f4", &[1, 4], &[0u8; 16]);
    let msg = err(&import(&["--input", s(&big_endian), "--out", &out("i")]));
    assert!(msg.contains("unsupported .npy dtype"), "{msg}");
}

/// A minimal .npy writer (version 1, C order) for inputs the fixtures do not cover.
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_interrupted_import_resumes_to_the_same_store() {
    let tmp = tempfile::tempdir().unwrap();
    let rows_n = 50usize;
    let good: Vec<f32> = (0..rows_n * 4).map(|i| (i as f32 * 0.37).sin()).collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let input = tmp.path().join("x.npy");
    // A NaN in row 45 stops the import after the shards of rows 0-39.
    let mut bad = good.clone();
    bad[45 * 4] = f32::NAN;
    write_npy(&input, "<f4", &[rows_n, 4], &bytes(&bad));
    let out = tmp.path().join("store");
    let args = ["--input", s(&input), "--out", s(&out), "--shard-rows", "10"];
    err(&import(&args));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        (m["complete"].as_bool(), m["rows"].as_u64()),
        (Some(false), Some(40))
    );
    // Without --resume the folder is refused; with it, the repaired file's remaining rows follow.
    let msg = err(&import(&args));
    assert!(msg.contains("already holds"), "{msg}");
    write_npy(&input, "<f4", &[rows_n, 4], &bytes(&good));
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    ok(&import(&resumed));
    let fresh = tmp.path().join("fresh");
    ok(&import(&[
        "--input",
        s(&input),
        "--out",
        s(&fresh),
        "--shard-rows",
        "10",
    ]));
    assert_eq!(rows(&out).0, good);
    assert_eq!(
        Store::open(&out).unwrap().manifest().shards,
        Store::open(&fresh).unwrap().manifest().shards
    );
}

#[test]
fn an_imported_store_trains_like_the_store_it_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    ok(&sae(&[
        "synth",
        "--features",
        "32",
        "--dim",
        "8",
        "--firing-prob",
        "0.05",
        "--samples",
        "3000",
        "--seed",
        "3",
        "--out",
        s(&synth),
        "--shard-rows",
        "1000",
    ]));
    // The synthetic store's rows as one .npy, imported with the same shards and split.
    let (acts, _) = rows(&synth);
    let npy = tmp.path().join("acts.npy");
    let data: Vec<u8> = acts.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(&npy, "<f4", &[3000, 8], &data);
    let imported = tmp.path().join("imported");
    let eval_rows = Store::open(&synth)
        .unwrap()
        .manifest()
        .eval_rows
        .to_string();
    ok(&import(&[
        "--input",
        s(&npy),
        "--out",
        s(&imported),
        "--shard-rows",
        "1000",
        "--eval-rows",
        &eval_rows,
    ]));
    let mut evals = Vec::new();
    for store in [&synth, &imported] {
        let out = tmp.path().join(format!(
            "sae-{}",
            store.file_name().unwrap().to_str().unwrap()
        ));
        ok(&sae(&[
            "train",
            "--store",
            s(store),
            "--out",
            s(&out),
            "--arch",
            "topk",
            "--k",
            "3",
            "--d-sae",
            "64",
            "--steps",
            "150",
            "--batch",
            "128",
            "--seed",
            "1",
        ]));
        let o = sae(&[
            "eval",
            "--sae",
            s(&out),
            "--store",
            s(store),
            "--json",
            "--ground-truth",
            s(&synth.join("ground_truth.safetensors")),
        ]);
        ok(&o);
        let weights = std::fs::read(out.join("sae_weights.safetensors")).unwrap();
        evals.push((String::from_utf8_lossy(&o.stdout).to_string(), weights));
    }
    assert_eq!(
        evals[0].1, evals[1].1,
        "identical weights from the same rows"
    );
    assert_eq!(evals[0].0, evals[1].0, "identical held-out metrics");
    let m: serde_json::Value = serde_json::from_str(&evals[1].0).unwrap();
    assert!(m["fvu"].as_f64().unwrap() < 0.5, "{m}");
}

#[test]
fn an_imported_harvest_trains_and_reports_like_the_harvest() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = "blocks.2.hook_resid_post";
    let acts = tmp.path().join("acts");
    let corpus = common::corpus();
    ok(&common::sae_offline(&[
        "harvest",
        "--model",
        common::MINILM,
        "--hook",
        hook,
        "--corpus",
        s(&corpus),
        "--out",
        s(&acts),
        "--max-tokens",
        "1500",
    ]));
    let harvested = acts.join(hook);
    let m = Store::open(&harvested).unwrap().manifest().clone();
    // The harvest's rows and token ids as numpy files, as another tool would have written them.
    let (rows_f32, ids) = rows(&harvested);
    let (n, d) = (m.rows as usize, m.d);
    let npy = tmp.path().join("acts.npy");
    write_npy(
        &npy,
        "<f4",
        &[n, d],
        &rows_f32
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let tok = tmp.path().join("tokens.npy");
    write_npy(
        &tok,
        "<u4",
        &[n],
        &ids.unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let imported = tmp.path().join("imported");
    let dtype = format!("{:?}", m.dtype).to_lowercase();
    let (shard, eval_rows) = (m.shards[0].rows.to_string(), m.eval_rows.to_string());
    ok(&import(&[
        "--input",
        s(&npy),
        "--token-ids",
        s(&tok),
        "--out",
        s(&imported),
        "--dtype",
        &dtype,
        "--shard-rows",
        &shard,
        "--eval-rows",
        &eval_rows,
        "--model",
        common::MINILM,
        "--hook",
        hook,
    ]));
    assert_eq!(Store::open(&imported).unwrap().manifest().shards, m.shards);
    let mut weights = Vec::new();
    for store in [&harvested, &imported] {
        let out = tmp.path().join(format!("sae-{}", weights.len()));
        ok(&sae(&[
            "train",
            "--store",
            s(store),
            "--out",
            s(&out),
            "--arch",
            "topk",
            "--k",
            "8",
            "--expansion",
            "2",
            "--steps",
            "40",
            "--batch",
            "256",
            "--seed",
            "2",
        ]));
        weights.push(std::fs::read(out.join("sae_weights.safetensors")).unwrap());
    }
    assert_eq!(
        weights[0], weights[1],
        "identical weights from the harvest and its import"
    );
    // The import recorded the model, so the report finds its tokenizer as for a harvest.
    let report = tmp.path().join("report");
    let o = common::sae_offline(&[
        "report",
        "--sae",
        s(&tmp.path().join("sae-1")),
        "--store",
        s(&imported),
        "--out",
        s(&report),
    ]);
    ok(&o);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(r["groups"][0]["kind"], "latents");
    assert_eq!(r["sae"]["hook_name"], hook);
}
