//! Automatic explanations: the best simple token hypothesis for a unit and its F1 score.
//!
//! A unit's active set A (rows where it is active) is compared with a hypothesis' set H (rows where
//! it holds): precision = |A∩H| / |H|, recall = |A∩H| / |A|, F1 = 2|A∩H| / (|A| + |H|).
//! Hypotheses: current token is t; current token in T (greedy growth from the best single token,
//! adding the token that raises F1 most while it raises F1 by at least `min_gain`, up to `max_set` tokens);
//! previous token is t; bigram (t1, t2). The best F1 wins; ties go to the simpler kind (that order).

use serde::{Deserialize, Serialize};

use crate::cooccur::{unpack_bigram, GlobalCounts, UnitCooccur};

/// A token hypothesis about when a unit is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hypothesis {
    /// The current token is `token`.
    Token { token: u32 },
    /// The current token is one of `tokens`.
    TokenSet { tokens: Vec<u32> },
    /// The previous token (same context) is `token`.
    PrevToken { token: u32 },
    /// The previous token is `prev` and the current token is `token`.
    Bigram { prev: u32, token: u32 },
}

impl Hypothesis {
    /// The hypothesis in words, with token texts from `text`.
    pub fn describe(&self, text: &dyn Fn(u32) -> String) -> String {
        match self {
            Hypothesis::Token { token } => format!("token {:?}", text(*token)),
            Hypothesis::TokenSet { tokens } => {
                let parts: Vec<String> = tokens.iter().map(|t| format!("{:?}", text(*t))).collect();
                format!("token in {{{}}}", parts.join(", "))
            }
            Hypothesis::PrevToken { token } => format!("after token {:?}", text(*token)),
            Hypothesis::Bigram { prev, token } => {
                format!("token {:?} after {:?}", text(*token), text(*prev))
            }
        }
    }

    /// Whether the hypothesis holds at a row with token `tok` and previous token `prev`.
    pub fn holds(&self, tok: u32, prev: Option<u32>) -> bool {
        match self {
            Hypothesis::Token { token } => tok == *token,
            Hypothesis::TokenSet { tokens } => tokens.contains(&tok),
            Hypothesis::PrevToken { token } => prev == Some(*token),
            Hypothesis::Bigram { prev: p, token } => tok == *token && prev == Some(*p),
        }
    }

    /// Every token id the hypothesis mentions.
    pub fn tokens(&self) -> Vec<u32> {
        match self {
            Hypothesis::Token { token } | Hypothesis::PrevToken { token } => vec![*token],
            Hypothesis::TokenSet { tokens } => tokens.clone(),
            Hypothesis::Bigram { prev, token } => vec![*prev, *token],
        }
    }
}

/// A scored hypothesis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The hypothesis.
    pub hypothesis: Hypothesis,
    /// |A∩H|: active rows where the hypothesis holds (a lower bound when counts were bounded).
    pub hits: u64,
    /// |H|: rows where the hypothesis holds.
    pub support: u64,
    /// |A|: rows where the unit is active.
    pub active: u64,
    /// hits / support.
    pub precision: f64,
    /// hits / active.
    pub recall: f64,
    /// 2 hits / (active + support).
    pub f1: f64,
}

impl Explanation {
    /// Scores a hypothesis from its counts.
    pub fn score(hypothesis: Hypothesis, hits: u64, support: u64, active: u64) -> Explanation {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Explanation {
            hypothesis,
            hits,
            support,
            active,
            precision: ratio(hits, support),
            recall: ratio(hits, active),
            f1: ratio(2 * hits, active + support),
        }
    }
}

fn f1(hits: u64, support: u64, active: u64) -> f64 {
    if active + support == 0 {
        0.0
    } else {
        2.0 * hits as f64 / (active + support) as f64
    }
}

/// The best hypothesis for a unit with `active` active rows, or `None` for a unit never active.
pub fn explain(
    active: u64,
    unit: &UnitCooccur,
    global: &GlobalCounts,
    max_set: usize,
    min_gain: f64,
) -> Option<Explanation> {
    if active == 0 {
        return None;
    }
    let mut best: Option<Explanation> = None;
    let mut consider = |e: Explanation| {
        if best.as_ref().is_none_or(|b| e.f1 > b.f1 + 1e-12) {
            best = Some(e);
        }
    };
    let cur = unit.cur.items();
    // Single current token.
    let mut single: Option<(u32, u64, u64)> = None;
    for &(t, c) in &cur {
        let (h, s) = (c as u64, global.cur(t));
        if single.is_none_or(|(_, bh, bs)| f1(h, s, active) > f1(bh, bs, active)) {
            single = Some((t, h, s));
        }
    }
    if let Some((t, h, s)) = single {
        consider(Explanation::score(
            Hypothesis::Token { token: t },
            h,
            s,
            active,
        ));
        // Greedy set growth from the best single token.
        let mut set = vec![t];
        let (mut sh, mut ss) = (h, s);
        while set.len() < max_set {
            let mut add: Option<(u32, u64, u64)> = None;
            for &(t2, c2) in &cur {
                if set.contains(&t2) {
                    continue;
                }
                let (nh, ns) = (sh + c2 as u64, ss + global.cur(t2));
                if add.is_none_or(|(_, ah, as_)| f1(nh, ns, active) > f1(ah, as_, active)) {
                    add = Some((t2, nh, ns));
                }
            }
            match add {
                Some((t2, nh, ns))
                    if f1(nh, ns, active) >= f1(sh, ss, active) + min_gain.max(1e-12) =>
                {
                    set.push(t2);
                    sh = nh;
                    ss = ns;
                }
                _ => break,
            }
        }
        if set.len() >= 2 {
            consider(Explanation::score(
                Hypothesis::TokenSet { tokens: set },
                sh,
                ss,
                active,
            ));
        }
    }
    for (t, c) in unit.prev.items() {
        let e = Explanation::score(
            Hypothesis::PrevToken { token: t },
            c as u64,
            global.prev(t),
            active,
        );
        consider(e);
    }
    for (key, c) in unit.bigram.items() {
        let (p, t) = unpack_bigram(key);
        let e = Explanation::score(
            Hypothesis::Bigram { prev: p, token: t },
            c as u64,
            global.bigram(p, t),
            active,
        );
        consider(e);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows: (token, previous token, active).
    fn build(rows: &[(u32, Option<u32>, bool)]) -> (u64, UnitCooccur, GlobalCounts) {
        let mut g = GlobalCounts::default();
        let mut u = UnitCooccur::new(16);
        let mut active = 0;
        for &(t, p, a) in rows {
            g.add(t, p);
            if a {
                u.add(t, p);
                active += 1;
            }
        }
        (active, u, g)
    }

    #[test]
    fn scores_by_hand() {
        // Token 1 occurs 4 times; the unit is active on 3 of them and on one token-2 row.
        // |A| = 4, H = {token 1}: |H| = 4, hits = 3 -> P = 0.75, R = 0.75, F1 = 6/8 = 0.75.
        // Set {1, 2}: |H| = 4 + 2 = 6, hits = 4 -> F1 = 8/10 = 0.8 (better, chosen).
        let rows = [
            (1, None, true),
            (1, Some(1), true),
            (1, Some(1), true),
            (1, Some(1), false),
            (2, Some(1), true),
            (2, Some(2), false),
            (3, Some(2), false),
        ];
        let (active, u, g) = build(&rows);
        let e = explain(active, &u, &g, 5, 0.01).unwrap();
        assert_eq!(e.hypothesis, Hypothesis::TokenSet { tokens: vec![1, 2] });
        assert_eq!((e.hits, e.support, e.active), (4, 6, 4));
        assert!((e.f1 - 0.8).abs() < 1e-12);
        assert!((e.precision - 4.0 / 6.0).abs() < 1e-12);
        assert!((e.recall - 1.0).abs() < 1e-12);
        let single = Explanation::score(Hypothesis::Token { token: 1 }, 3, 4, 4);
        assert!((single.f1 - 0.75).abs() < 1e-12);
    }

    #[test]
    fn finds_previous_token_and_bigram() {
        // Active exactly after token 9: F1 = 1 for "previous token 9".
        let rows = [
            (1, Some(9), true),
            (2, Some(9), true),
            (9, Some(1), false),
            (1, Some(2), false),
        ];
        let (active, u, g) = build(&rows);
        let e = explain(active, &u, &g, 5, 0.01).unwrap();
        assert_eq!(e.hypothesis, Hypothesis::PrevToken { token: 9 });
        assert!((e.f1 - 1.0).abs() < 1e-12);
        // Active on "2 after 9" only, while 2 and 9 each occur elsewhere.
        let rows = [
            (2, Some(9), true),
            (2, Some(1), false),
            (3, Some(9), false),
            (2, Some(9), true),
        ];
        let (active, u, g) = build(&rows);
        let e = explain(active, &u, &g, 5, 0.01).unwrap();
        assert_eq!(e.hypothesis, Hypothesis::Bigram { prev: 9, token: 2 });
        assert!((e.f1 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn set_growth_needs_a_real_gain() {
        // Active on all 100 rows of token 1 and on the single row of token 2.
        // {1}: F1 = 200 / (101 + 100) = 0.995; {1, 2}: 202 / 202 = 1, a gain of 0.005.
        let mut rows = vec![(1, None, true); 100];
        rows.push((2, None, true));
        rows.extend(vec![(3, None, false); 50]);
        let (active, u, g) = build(&rows);
        let e = explain(active, &u, &g, 5, 0.01).unwrap();
        assert_eq!(e.hypothesis, Hypothesis::Token { token: 1 });
        assert!((e.f1 - 200.0 / 201.0).abs() < 1e-12);
        let e = explain(active, &u, &g, 5, 0.0).unwrap();
        assert_eq!(e.hypothesis, Hypothesis::TokenSet { tokens: vec![1, 2] });
    }

    #[test]
    fn dead_unit_has_no_explanation_and_words_are_quoted() {
        let (_, u, g) = build(&[(1, None, false)]);
        assert!(explain(0, &u, &g, 5, 0.01).is_none());
        let text = |t: u32| {
            if t == 1 {
                "a\"b".to_string()
            } else {
                "c".to_string()
            }
        };
        let h = Hypothesis::TokenSet { tokens: vec![1, 2] };
        assert_eq!(h.describe(&text), "token in {\"a\\\"b\", \"c\"}");
        let h = Hypothesis::Bigram { prev: 2, token: 1 };
        assert_eq!(h.describe(&text), "token \"a\\\"b\" after \"c\"");
    }
}
