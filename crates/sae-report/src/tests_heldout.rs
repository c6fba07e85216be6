//! Held-out scoring on planted units: a unit that fires on a random row subset (no token
//! structure) is fitted well in-sample by a token set, scores ~0 held out, and is not counted as
//! monosemantic; a real token detector scores F1 1 on both halves.

use crate::analyzer::AnalysisSettings;
use crate::explain::Hypothesis;
use crate::summary::summarize;
use crate::tests_synthetic::{analyze_with, lcg, Data};

const UNITS: usize = 3;

/// 60 documents of 50 rows. Each row's token is a common one (0..20) or, on 30% of rows, a token
/// seen nowhere else in the store (1000 + row). Units: 0 = planted, active on 30 rows drawn at
/// random among the rare-token rows; 1 = token 3; 2 = planted, active on 30 random rows of any
/// token.
fn planted() -> Data {
    let mut s = 11u64;
    let (mut tokens, mut docs, mut positions) = (vec![], vec![], vec![]);
    for doc in 0..60u32 {
        for pos in 0..50u32 {
            let row = tokens.len() as u32;
            let rare = lcg(&mut s).is_multiple_of(10) || lcg(&mut s) % 10 < 2;
            tokens.push(if rare {
                1000 + row
            } else {
                (lcg(&mut s) % 20) as u32
            });
            docs.push(doc);
            positions.push(pos);
        }
    }
    let n = tokens.len();
    let mut pick = |eligible: &dyn Fn(usize) -> bool| {
        let mut rows = std::collections::BTreeSet::new();
        while rows.len() < 30 {
            let r = (lcg(&mut s) % n as u64) as usize;
            if eligible(r) {
                rows.insert(r);
            }
        }
        rows
    };
    let on_rare = pick(&|r| tokens[r] >= 1000);
    let on_any = pick(&|_| true);
    let mut acts = vec![0f32; n * UNITS];
    for r in 0..n {
        let mag = 0.5 + (r % 7) as f32 / 7.0;
        acts[r * UNITS] = on_rare.contains(&r) as u8 as f32 * mag;
        acts[r * UNITS + 1] = (tokens[r] == 3) as u8 as f32 * mag;
        acts[r * UNITS + 2] = on_any.contains(&r) as u8 as f32 * mag;
    }
    Data {
        tokens,
        docs,
        positions,
        acts,
    }
}

#[test]
fn a_random_subset_is_fitted_in_sample_but_scores_zero_held_out() {
    let d = planted();
    // A token set large enough to memorise the fit half's rows (up to 16 tokens).
    let settings = AnalysisSettings {
        max_set: 16,
        ..AnalysisSettings::default()
    };
    let units = analyze_with(&d, 256, UNITS, settings);
    let p = &units[0];
    assert_eq!(p.active, 30);
    assert!(
        p.active_fit >= 5 && p.active_heldout >= 5,
        "{} / {}",
        p.active_fit,
        p.active_heldout
    );
    let fit = p.in_sample.as_ref().unwrap();
    assert!(matches!(fit.hypothesis, Hypothesis::TokenSet { .. }));
    assert!(fit.f1 > 0.8, "in-sample F1 {}", fit.f1);
    let held = p.explanation.as_ref().unwrap();
    assert_eq!(held.hypothesis, fit.hypothesis);
    assert!(held.f1 < 0.05, "held-out F1 {}", held.f1);
    // Random rows of any token: no hypothesis survives either.
    let any = units[2].explanation.as_ref().unwrap();
    assert!(any.f1 < 0.15, "held-out F1 {}", any.f1);
    // The detector is found on the fit half and holds on the held-out half.
    let det = units[1].explanation.as_ref().unwrap();
    assert_eq!(det.hypothesis, Hypothesis::Token { token: 3 });
    assert!((det.f1 - 1.0).abs() < 1e-12);
    // Summaries use the held-out score: only the detector is monosemantic; in-sample both
    // the detector and the planted unit would be.
    let s = summarize(&units, 0.5, 5, 0);
    assert_eq!(s.scored, 3);
    assert_eq!(s.monosemantic, 1);
    assert_eq!(s.in_sample_monosemantic, 2);
    // Too rare to score on both halves: unscored, not monosemantic.
    let s = summarize(&units, 0.5, 40, 0);
    assert_eq!((s.scored, s.monosemantic), (1, 1));
    assert_eq!(s.unscored, 2);
}
