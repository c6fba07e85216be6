//! End-to-end analyzer test on synthetic rows whose units are token detectors by construction.

use crate::analyzer::{AnalysisSettings, GroupAnalyzer};
use crate::explain::Hypothesis;
use crate::window::UnitBatch;

const UNITS: usize = 6;

pub(crate) struct Data {
    pub tokens: Vec<u32>,
    pub docs: Vec<u32>,
    pub positions: Vec<u32>,
    pub acts: Vec<f32>,
}

pub(crate) fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// 40 documents of 50 tokens over a vocabulary of 20. Units: 0 = token 3; 1 = token in {5,6,7};
/// 2 = previous token 9; 3 = token 4 after token 2; 4 = dead; 5 = random on 20% of rows.
pub(crate) fn data() -> Data {
    let mut s = 7u64;
    let (mut tokens, mut docs, mut positions, mut acts) = (vec![], vec![], vec![], vec![]);
    for doc in 0..40u32 {
        for pos in 0..50u32 {
            let t = (lcg(&mut s) % 20) as u32;
            let prev = (pos > 0).then(|| *tokens.last().unwrap());
            let mag = 0.5 + (lcg(&mut s) % 100) as f32 / 100.0;
            let row = [
                (t == 3) as u8 as f32 * mag,
                [5, 6, 7].contains(&t) as u8 as f32 * mag,
                (prev == Some(9)) as u8 as f32 * mag,
                (prev == Some(2) && t == 4) as u8 as f32 * mag,
                0.0,
                lcg(&mut s).is_multiple_of(5) as u8 as f32 * mag,
            ];
            tokens.push(t);
            docs.push(doc);
            positions.push(pos);
            acts.extend_from_slice(&row);
        }
    }
    Data {
        tokens,
        docs,
        positions,
        acts,
    }
}

fn analyze(d: &Data, batch: usize) -> Vec<crate::UnitStats> {
    let settings = AnalysisSettings {
        top_n: 5,
        before: 4,
        after: 3,
        ..AnalysisSettings::default()
    };
    analyze_with(d, batch, UNITS, settings)
}

pub(crate) fn analyze_with(
    d: &Data,
    batch: usize,
    units: usize,
    settings: AnalysisSettings,
) -> Vec<crate::UnitStats> {
    let mut an = GroupAnalyzer::new(vec![0.0; units], settings);
    let n = d.tokens.len();
    let mut lo = 0;
    while lo < n {
        let hi = (lo + batch).min(n);
        an.push(&UnitBatch {
            start_row: lo as u64,
            units,
            acts: &d.acts[lo * units..hi * units],
            token_ids: &d.tokens[lo..hi],
            doc_ids: Some(&d.docs[lo..hi]),
            positions: Some(&d.positions[lo..hi]),
        });
        lo = hi;
    }
    an.finish()
}

#[test]
fn token_detectors_are_found_with_f1_one() {
    let d = data();
    let units = analyze(&d, 37);
    let expect = [
        Hypothesis::Token { token: 3 },
        Hypothesis::TokenSet {
            tokens: vec![5, 6, 7],
        },
        Hypothesis::PrevToken { token: 9 },
        Hypothesis::Bigram { prev: 2, token: 4 },
    ];
    for (u, h) in expect.iter().enumerate() {
        let e = units[u].explanation.as_ref().unwrap();
        let mut got = e.hypothesis.clone();
        if let Hypothesis::TokenSet { tokens } = &mut got {
            tokens.sort();
        }
        assert_eq!(&got, h, "unit {u}");
        // Chosen on the fit half, F1 = 1 on the held-out half and in-sample alike.
        assert!((e.f1 - 1.0).abs() < 1e-12, "unit {u} held-out F1 {}", e.f1);
        let fit = units[u].in_sample.as_ref().unwrap();
        assert!(
            (fit.f1 - 1.0).abs() < 1e-12,
            "unit {u} in-sample F1 {}",
            fit.f1
        );
        assert!(
            units[u].active_fit > 0 && units[u].active_heldout > 0,
            "unit {u}"
        );
        assert_eq!(
            units[u].active_fit + units[u].active_heldout,
            units[u].active
        );
        // The explanation holds on every sampled held-out row, in every activation band.
        assert!(!units[u].bands.is_empty(), "unit {u}");
        assert!(
            units[u].bands.iter().all(|b| b.precision == 1.0),
            "unit {u}"
        );
    }
    assert_eq!(units[4].active, 0);
    assert!(units[4].explanation.is_none());
    let poly = units[5].explanation.as_ref().unwrap();
    assert!(poly.f1 < 0.4, "random unit F1 {}", poly.f1);
    let n3 = d.tokens.iter().filter(|&&t| t == 3).count() as u64;
    assert_eq!(units[0].active, n3);
    assert!((units[0].density - n3 as f64 / 2000.0).abs() < 1e-12);
}

#[test]
fn windows_match_the_rows_and_respect_documents() {
    let d = data();
    // Batch sizes smaller than the window and uneven ones must give the same contexts.
    let a = analyze(&d, 2);
    let b = analyze(&d, 2000);
    let c = analyze(&d, 37);
    for u in 0..UNITS {
        assert_eq!(a[u].top, b[u].top, "unit {u}");
        assert_eq!(c[u].top, b[u].top, "unit {u}");
        assert_eq!(a[u].quantiles, b[u].quantiles, "unit {u}");
    }
    for (u, unit) in b.iter().enumerate().take(4) {
        // The bigram fires only ~5 times (some in overlapping windows); the others fire often.
        assert!(!unit.top.is_empty() && unit.top.len() <= 5);
        if u < 3 {
            assert_eq!(unit.top.len(), 5);
        }
        // Distinct contexts: no two kept windows overlap.
        for (i, x) in unit.top.iter().enumerate() {
            for y in &unit.top[i + 1..] {
                assert!(
                    x.doc != y.doc || x.row.abs_diff(y.row) > 7,
                    "overlapping contexts"
                );
            }
        }
        for ctx in &unit.top {
            let first = ctx.row as usize - ctx.center;
            for (k, (&t, &act)) in ctx.tokens.iter().zip(&ctx.acts).enumerate() {
                let r = first + k;
                assert_eq!(t, d.tokens[r]);
                assert_eq!(act, crate::round_sig(d.acts[r * UNITS + u]));
                assert_eq!(d.docs[r], ctx.doc.unwrap(), "window crosses a document");
            }
            let pos = ctx.pos.unwrap() as usize;
            assert_eq!(ctx.center, pos.min(4));
            assert_eq!(ctx.tokens.len() - ctx.center - 1, (49 - pos).min(3));
        }
        // Strongest first.
        assert!(unit.top.windows(2).all(|w| w[0].act >= w[1].act));
    }
}
