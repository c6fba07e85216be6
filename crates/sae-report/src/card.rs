//! A unit's card as plain text for the terminal (`sae inspect`). Token texts are cleaned of
//! control characters so corpus text cannot drive the terminal.

use std::fmt::Write;

use crate::contexts::Context;
use crate::schema::{Report, UnitKind};
use crate::ReportError;

/// Replaces control characters (newlines, escapes) with visible escapes.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn context_line(report: &Report, c: &Context) -> String {
    let mut line = String::new();
    for (k, &t) in c.tokens.iter().enumerate() {
        let text = clean(&report.token(t));
        if k == c.center {
            let _ = write!(line, "[[{text}]]");
        } else {
            line.push_str(&text);
        }
    }
    format!("{:>9.4}  {line}", c.act)
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.4}"))
}

/// The card of unit `id` of group `kind`.
pub fn card(report: &Report, kind: UnitKind, id: usize) -> Result<String, ReportError> {
    let group = report.group(kind).ok_or_else(|| ReportError::BadReport {
        path: "report.json".into(),
        msg: format!("the report has no {kind:?} group"),
    })?;
    let u = group.units.get(id).ok_or(ReportError::NoSuchUnit {
        id,
        count: group.units.len(),
    })?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} #{id}  [{}]",
        match kind {
            UnitKind::Latents => "Latent",
            UnitKind::Neurons => "Neuron",
            UnitKind::Basis => "Basis direction",
            UnitKind::Untrained => "Untrained latent",
            UnitKind::Random => "Random direction",
        },
        group.label
    );
    let _ = writeln!(
        s,
        "  density   {:.3e}  ({} of {} rows, log10 {})",
        u.density,
        u.active,
        group.rows,
        opt(u.log10_density)
    );
    let _ = writeln!(
        s,
        "  mean {:.4}   mean when active {}   max {:.4}   std {:.4}",
        u.mean,
        opt(u.mean_active),
        u.max,
        u.std
    );
    let _ = writeln!(
        s,
        "  skewness {}   kurtosis {}   active above {}",
        opt(u.skewness),
        opt(u.kurtosis),
        u.threshold
    );
    match (&u.explanation, &u.explanation_text) {
        (Some(e), Some(t)) => {
            let _ = writeln!(
                s,
                "  explanation  {}  (chosen on the fit half: {} active rows)\n  held-out     F1 {:.3}  precision {:.3}  recall {:.3}  ({} active rows){}",
                clean(t),
                u.active_fit,
                e.f1,
                e.precision,
                e.recall,
                u.active_heldout,
                if u.counts_exact {
                    ""
                } else {
                    "  (counts are lower bounds)"
                }
            );
            if let Some(f) = &u.in_sample {
                let _ = writeln!(
                    s,
                    "  in-sample    F1 {:.3}  precision {:.3}  recall {:.3}",
                    f.f1, f.precision, f.recall
                );
            }
            for b in &u.bands {
                let _ = writeln!(
                    s,
                    "  precision in the {:<14} {:.3}  ({} of {} sampled held-out rows)",
                    b.band, b.precision, b.hits, b.rows
                );
            }
        }
        _ => {
            let _ = writeln!(s, "  explanation  none (never active on the fit half)");
        }
    }
    if let Some(effects) = group.logits.as_ref().and_then(|l| l.get(id)) {
        let list = |v: &[(u32, f32)]| -> String {
            v.iter()
                .map(|(t, l)| format!("{:?} {l:+.2}", clean(&report.token(*t))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "  promotes     {}", list(&effects.promoted));
        let _ = writeln!(s, "  suppresses   {}", list(&effects.suppressed));
    }
    if !u.top.is_empty() {
        let _ = writeln!(s, "\n  top contexts (activation, centre token in [[ ]]):");
        for c in &u.top {
            let _ = writeln!(s, "  {}", context_line(report, c));
        }
    }
    for q in &u.quantiles {
        let _ = writeln!(
            s,
            "\n  quantile {:.0}-{:.0}% of active values ({:.4} .. {:.4}):",
            q.q_lo * 100.0,
            q.q_hi * 100.0,
            q.act_lo,
            q.act_hi
        );
        for c in &q.contexts {
            let _ = writeln!(s, "  {}", context_line(report, c));
        }
    }
    if !u.histogram.is_empty() {
        let _ = writeln!(s, "\n  histogram of active values:");
        let peak = u
            .histogram
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(1)
            .max(1);
        for b in &u.histogram {
            let bar = "#".repeat((b.count * 40).div_ceil(peak) as usize);
            let _ = writeln!(s, "  [{:>9.4}, {:>9.4})  {bar} {}", b.lo, b.hi, b.count);
        }
    }
    Ok(s)
}
