//! Writes a large synthetic activation store with token ids, document ids and positions, plus a
//! random TopK SAE on it, for measuring `sae report` (time and peak memory) at scale.
//!
//!   cargo run --release -p sae-report --example synthetic_store -- OUT_DIR [ROWS] [D] [D_SAE] [K]
//!
//! Rows are x = E[token] + 0.3 E[previous token] + noise, with tokens log-uniform over a
//! 30,000-token vocabulary and documents of 256 tokens; the SAE has W_enc = W_dec^T (random unit rows).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use sae_model::{Activation, Sae, SaeConfig};
use sae_store::{DType, RowBatch, Source, StoreSpec, StoreWriter, SynthSource};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (a, b) = (self.unit().max(1e-7), self.unit());
        (-2.0 * a.ln()).sqrt() * (std::f32::consts::TAU * b).cos()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(
        args.get(1)
            .ok_or("usage: synthetic_store OUT_DIR [ROWS] [D] [D_SAE] [K]")?,
    );
    let num =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (rows, d, d_sae, k) = (num(2, 1_000_000), num(3, 384), num(4, 3072), num(5, 32));
    const VOCAB: usize = 30_000;
    const DOC: usize = 256;
    let mut rng = Rng(42);
    let emb: Vec<f32> = (0..VOCAB * d).map(|_| rng.normal()).collect();
    let source = Source::Synthetic(SynthSource {
        features: VOCAB,
        dim: d,
        firing_prob: 0.0,
        zipf_exponent: Some(1.0),
        correlated_groups: None,
        samples: rows as u64,
        seed: 42,
        magnitude: "token embedding + noise".into(),
    });
    let spec = StoreSpec {
        d,
        dtype: DType::F16,
        shard_rows: 65_536,
        source,
        with_token_ids: true,
        with_doc_ids: true,
        with_positions: true,
    };
    let mut w = StoreWriter::create(&out.join("store"), spec)?;
    let batch = 8192;
    let mut prev = 0usize;
    let mut done = 0;
    while done < rows {
        let n = batch.min(rows - done);
        let (mut acts, mut toks, mut docs, mut pos) =
            (Vec::with_capacity(n * d), vec![], vec![], vec![]);
        for r in done..done + n {
            let t = ((VOCAB as f32).powf(rng.unit()) as usize)
                .saturating_sub(1)
                .min(VOCAB - 1);
            let p = r % DOC;
            for c in 0..d {
                let mut v = emb[t * d + c] + 0.1 * rng.normal();
                if p > 0 {
                    v += 0.3 * emb[prev * d + c];
                }
                acts.push(v);
            }
            toks.push(t as u32);
            docs.push((r / DOC) as u32);
            pos.push(p as u32);
            prev = t;
        }
        w.push(
            RowBatch {
                acts: &acts,
                token_ids: Some(&toks),
                doc_ids: Some(&docs),
                positions: Some(&pos),
            },
            None,
        )?;
        done += n;
    }
    w.finish(0)?;
    let mut w_dec: Vec<f32> = (0..d_sae * d).map(|_| rng.normal()).collect();
    for row in w_dec.chunks_exact_mut(d) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let dev = Device::Cpu;
    let w_dec = Tensor::from_vec(w_dec, (d_sae, d), &dev)?;
    let sae = Sae::new(
        SaeConfig::new(d, d_sae, Activation::TopK { k }),
        w_dec.t()?.contiguous()?,
        Tensor::zeros(d_sae, candle_core::DType::F32, &dev)?,
        w_dec,
        Tensor::zeros(d, candle_core::DType::F32, &dev)?,
        None,
    )?;
    sae.save(&out.join("sae"), None)?;
    let vocab: serde_json::Map<String, serde_json::Value> = (0..VOCAB)
        .map(|i| (format!("w{i}"), (i as u64).into()))
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::write(out.join("tokenizer.json"), serde_json::to_string(&tok)?)?;
    println!(
        "wrote {rows} rows (d {d}) and an SAE (d_sae {d_sae}, k {k}) into {}",
        out.display()
    );
    Ok(())
}
