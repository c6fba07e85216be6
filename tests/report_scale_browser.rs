//! The dashboard at scale, in headless chromium: `sae report` on an SAE with 24,576 latents writes
//! an `index.html` under 5 MB that opens from file:// with its first card rendered in under 5 s
//! (the units' full data comes from chunk scripts loaded on demand); a rerun into the same folder
//! leaves only the new chunks; a page without its chunks says so instead of hanging.

mod browser;
mod report_common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use browser::dump_dom;
use candle_core::{Device, Tensor};
use report_common::*;
use sae_model::{Activation, Sae, SaeConfig};

const WIDE: usize = 24_576;

fn url(path: &Path, hash: &str) -> String {
    format!("file://{}{hash}", path.canonicalize().unwrap().display())
}

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 33
}

/// A ReLU SAE with `d_sae` random latents on the fixture's rows (one-hot token and previous
/// token): each latent fires where its weights on the two tokens sum past the bias, on about a
/// tenth of the rows, so every latent gets contexts, a histogram and an explanation.
fn random_sae(d_in: usize, d_sae: usize) -> Sae {
    let mut s = 5u64;
    let w: Vec<f32> = (0..d_in * d_sae)
        .map(|_| (lcg(&mut s) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    let mut w_dec = vec![0f32; d_sae * d_in];
    for i in 0..d_in {
        for l in 0..d_sae {
            w_dec[l * d_in + i] = w[i * d_sae + l];
        }
    }
    let dev = Device::Cpu;
    Sae::new(
        SaeConfig::new(d_in, d_sae, Activation::Relu),
        Tensor::from_vec(w, (d_in, d_sae), &dev).unwrap(),
        Tensor::from_vec(vec![-1.5f32; d_sae], d_sae, &dev).unwrap(),
        Tensor::from_vec(w_dec, (d_sae, d_in), &dev).unwrap(),
        Tensor::zeros(d_in, candle_core::DType::F32, &dev).unwrap(),
        None,
    )
    .unwrap()
}

/// The chunk folders (`units-*`) of a report folder.
fn chunk_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("units-") || name.starts_with(".units-")
        })
        .collect();
    dirs.sort();
    dirs
}

/// The number in `attr="..."` on the page's body.
fn body_number(dom: &str, attr: &str) -> f64 {
    let v = dom
        .split(&format!("{attr}=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {attr} on the page"));
    v[..v.find('"').unwrap()].parse().unwrap()
}

#[test]
fn dashboard_of_24576_latents_is_small_and_opens_fast() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let d_in = 2 * words().len();
    write_store(&store, 100, 1024, synth_source(4000, d_in));
    let sae_dir = dir.path().join("sae");
    random_sae(d_in, WIDE).save(&sae_dir, None).unwrap();
    let tokenizer = dir.path().join("tokenizer.json");
    write_tokenizer(&tokenizer);
    let out = dir.path().join("out");
    let t = Instant::now();
    let o = sae(&[
        "report",
        "--sae",
        s(&sae_dir),
        "--store",
        s(&store),
        "--tokenizer",
        s(&tokenizer),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report_s = t.elapsed().as_secs_f64();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let units = r["groups"][0]["units"].as_array().unwrap();
    assert_eq!(units.len(), WIDE);
    let with_contexts = units
        .iter()
        .filter(|u| !u["top"].as_array().unwrap().is_empty())
        .count();
    assert!(
        with_contexts > WIDE * 9 / 10,
        "{with_contexts} latents have contexts"
    );

    let index = out.join("index.html");
    let html_bytes = std::fs::metadata(&index).unwrap().len();
    let json_bytes = std::fs::metadata(out.join("report.json")).unwrap().len();
    assert!(html_bytes < 5_000_000, "index.html is {html_bytes} bytes");
    let dirs = chunk_dirs(&out);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let chunks = std::fs::read_dir(&dirs[0]).unwrap().count();
    assert_eq!(chunks, WIDE.div_ceil(128) + d_in.div_ceil(128));

    // The best latent's card (the default view), then the last latent's (the last chunk).
    let t = Instant::now();
    let dom = dump_dom(&url(&index, ""));
    let chromium_s = t.elapsed().as_secs_f64();
    assert!(
        dom.contains("data-rendered=\"true\""),
        "page did not finish"
    );
    let ms = body_number(&dom, "data-render-ms");
    assert!(ms < 5000.0, "first card after {ms} ms");
    assert!(dom.contains(&format!("{WIDE} of {WIDE} units")));
    let ctx = dom
        .split("id=\"top-contexts\"")
        .nth(1)
        .expect("a card with contexts");
    assert!(ctx.contains("class=\"ctx\""));
    assert!(dom.contains("id=\"unit-explanation\""));
    let last = dump_dom(&url(&index, &format!("#latents/{}", WIDE - 1)));
    assert!(last.contains(&format!("SAE latents ({WIDE}) #{}", WIDE - 1)));
    assert!(last.contains("id=\"top-contexts\"") && !last.contains("id=\"unit-missing\""));
    let last_ms = body_number(&last, "data-render-ms");
    assert!(last_ms < 5000.0, "last card after {last_ms} ms");
    eprintln!(
        "24576 latents: index.html {html_bytes} bytes (report.json {json_bytes}), {chunks} chunk files; \
         first card at {ms} ms of page time ({last_ms} ms for #latents/{}), chromium {chromium_s:.1} s \
         wall; sae report {report_s:.1} s",
        WIDE - 1
    );
}

#[test]
fn rerun_replaces_the_chunks_and_a_page_without_them_says_so() {
    let f = fixture();
    let out = f.dir.path().join("out");
    report(&f, &out, &["--top", "5"]);
    let first = chunk_dirs(&out);
    assert_eq!(first.len(), 1);
    // The same report again: the same folder (named by its contents).
    report(&f, &out, &["--top", "5"]);
    assert_eq!(chunk_dirs(&out), first);
    // A leftover temporary folder of a run that died, and a different report into the same folder.
    std::fs::create_dir(out.join(".units-tmp-1")).unwrap();
    report(&f, &out, &["--top", "2"]);
    let second = chunk_dirs(&out);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    let name = second[0].file_name().unwrap().to_str().unwrap().to_string();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains(&format!("\"dir\":\"{name}\"")));
    let dom = dump_dom(&url(&out.join("index.html"), "#latents/0"));
    let ctx = dom.split("id=\"top-contexts\"").nth(1).expect("contexts");
    let shown = ctx
        .split("<h3>")
        .next()
        .unwrap()
        .matches("class=\"ctx\"")
        .count();
    assert_eq!(shown, 2, "the new run's two top contexts");
    // Without its side files the page still finishes, and says what is missing.
    std::fs::remove_dir_all(&second[0]).unwrap();
    let dom = dump_dom(&url(&out.join("index.html"), "#latents/0"));
    assert!(dom.contains("data-rendered=\"true\""));
    assert!(dom.contains("id=\"unit-missing\"") && dom.contains(&name));
    // The table and the overview need no side file.
    assert_eq!(dom.matches("class=\"unit-row").count(), D_SAE);
    assert!(dom.contains("id=\"comparison\""));
}
