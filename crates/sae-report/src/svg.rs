//! Line plots as standalone inline `<svg>` markup (no script, no external resources): a linear x
//! axis, a linear or log10 y axis with ticks and labels, one `<path>` per series and a legend.
//! The root element records its axis domains and plot area (`data-x-lo`, `data-x-hi`,
//! `data-y-lo`, `data-y-hi`, `data-y-scale`, `data-area`) and every path its series and point
//! count (`data-series`, `data-points`), so a test can map the drawing back to the data.

use std::fmt::Write;

/// Width and height of a plot in pixels.
pub const PLOT_W: f64 = 420.0;
/// See [`PLOT_W`].
pub const PLOT_H: f64 = 250.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 40.0;

/// How a y axis maps values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum YScale {
    /// Linear.
    Linear,
    /// log10 (every value > 0).
    Log,
}

/// One axis: its domain and ticks (value, label).
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Lowest value of the axis.
    pub lo: f64,
    /// Highest value of the axis.
    pub hi: f64,
    /// Log10 or linear.
    pub scale: YScale,
    /// Tick values and labels.
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// Position of `v` in [0, 1] along the axis.
    pub fn unit(&self, v: f64) -> f64 {
        match self.scale {
            YScale::Linear => (v - self.lo) / (self.hi - self.lo),
            YScale::Log => (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()),
        }
    }

    /// A linear axis over [min, max], widened to whole multiples of a 1-2-2.5-5 tick step.
    pub fn linear(min: f64, max: f64) -> Axis {
        let (min, max) = if max > min {
            (min, max)
        } else if min == 0.0 {
            (0.0, 1.0)
        } else {
            (min - 0.5 * min.abs(), max + 0.5 * max.abs())
        };
        let raw = (max - min) / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|s| s * mag)
            .find(|s| *s >= raw * (1.0 - 1e-9))
            .unwrap_or(10.0 * mag);
        let (lo, hi) = ((min / step).floor() * step, (max / step).ceil() * step);
        let count = ((hi - lo) / step).round() as i64;
        let ticks = (0..=count)
            .map(|i| {
                let v = lo + i as f64 * step;
                (v, tick_label(v, step))
            })
            .collect();
        Axis {
            lo,
            hi,
            scale: YScale::Linear,
            ticks,
        }
    }

    /// A log10 axis over [min, max] (both > 0), widened by 4% of its decades on each side, with
    /// ticks at 1, 2 and 5 times powers of ten (only powers of ten over more than four decades,
    /// every multiple within one decade).
    pub fn log(min: f64, max: f64) -> Axis {
        let (a, b) = (min.log10(), max.log10());
        let pad = ((b - a) * 0.04).max(0.02);
        let (lo, hi) = (10f64.powf(a - pad), 10f64.powf(b + pad));
        let mantissas: &[f64] = match b - a {
            r if r > 4.0 => &[1.0],
            r if r > 1.0 => &[1.0, 2.0, 5.0],
            _ => &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        };
        let mut ticks = Vec::new();
        for e in (a - pad).floor() as i32..=(b + pad).ceil() as i32 {
            for m in mantissas {
                let v = m * 10f64.powi(e);
                if v >= lo && v <= hi {
                    ticks.push((v, log_label(v)));
                }
            }
        }
        if ticks.len() < 2 {
            ticks = vec![(min, log_label(min))];
            if max > min {
                ticks.push((max, log_label(max)));
            }
        }
        Axis {
            lo,
            hi,
            scale: YScale::Log,
            ticks,
        }
    }
}

/// A label for a tick of a linear axis with this step: "12k" from 10,000 on, else as many
/// decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let a = v.abs();
    if a >= 1e6 && step >= 1e5 {
        return trim(format!("{:.1}", v / 1e6)) + "M";
    }
    if a >= 1e4 && step >= 100.0 {
        return trim(format!("{:.1}", v / 1e3)) + "k";
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        "0".into()
    } else {
        s
    }
}

fn trim(s: String) -> String {
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A label for a tick of a log axis: plain from 0.01 to 10,000, else "2e-4".
fn log_label(v: f64) -> String {
    if (0.01..1e4).contains(&v) {
        trim(format!("{v:.3}"))
    } else {
        let e = v.log10().floor();
        let m = v / 10f64.powf(e);
        format!("{}e{}", trim(format!("{m:.1}")), e as i32)
    }
}

/// Escapes text for HTML and SVG markup (quotes included, for attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of a plot.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// Name (legend and `data-series`).
    pub name: &'a str,
    /// Stroke colour.
    pub color: &'a str,
    /// (x, y) points in drawing order.
    pub points: &'a [(f64, f64)],
}

/// A plot of lines over shared axes.
#[derive(Clone, Debug)]
pub struct LinePlot<'a> {
    /// Title (drawn and as the `<title>`).
    pub title: &'a str,
    /// X axis label.
    pub xlabel: &'a str,
    /// Y axis label.
    pub ylabel: &'a str,
    /// X axis (linear).
    pub x: Axis,
    /// Y axis.
    pub y: Axis,
    /// The lines.
    pub lines: Vec<Line<'a>>,
}

impl LinePlot<'_> {
    /// Pixel coordinates of a data point.
    pub fn pixel(&self, x: f64, y: f64) -> (f64, f64) {
        let px = LEFT + self.x.unit(x) * (PLOT_W - LEFT - RIGHT);
        let py = PLOT_H - BOTTOM - self.y.unit(y) * (PLOT_H - TOP - BOTTOM);
        (px, py)
    }

    /// The `<svg>` element.
    pub fn render(&self) -> String {
        let scale = match self.y.scale {
            YScale::Linear => "linear",
            YScale::Log => "log",
        };
        let (w, h) = (PLOT_W - LEFT - RIGHT, PLOT_H - TOP - BOTTOM);
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="curve" width="{PLOT_W}" height="{PLOT_H}" viewBox="0 0 {PLOT_W} {PLOT_H}" role="img" data-x-lo="{}" data-x-hi="{}" data-y-lo="{}" data-y-hi="{}" data-y-scale="{scale}" data-area="{LEFT} {TOP} {w} {h}"><title>{}</title>"#,
            self.x.lo,
            self.x.hi,
            self.y.lo,
            self.y.hi,
            esc(self.title)
        );
        self.axes(&mut s);
        for line in &self.lines {
            let mut d = String::new();
            for (i, &(x, y)) in line.points.iter().enumerate() {
                let (px, py) = self.pixel(x, y);
                let _ = write!(d, "{}{px:.2},{py:.2}", if i == 0 { "M" } else { " L" });
            }
            let _ = write!(
                s,
                r#"<path data-series="{}" data-points="{}" d="{d}" fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round"/>"#,
                esc(line.name),
                line.points.len(),
                esc(line.color)
            );
            if let [(x, y)] = line.points {
                // A path of one point draws nothing: mark it.
                let (px, py) = self.pixel(*x, *y);
                let _ = write!(
                    s,
                    r#"<circle cx="{px:.2}" cy="{py:.2}" r="3" fill="{}"/>"#,
                    esc(line.color)
                );
            }
        }
        self.legend(&mut s);
        s.push_str("</svg>");
        s
    }

    fn axes(&self, s: &mut String) {
        let (x0, x1, y0, y1) = (LEFT, PLOT_W - RIGHT, PLOT_H - BOTTOM, TOP);
        let _ = write!(
            s,
            r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="#fff" stroke="#99a"/>"##,
            x1 - x0,
            y0 - y1
        );
        for (v, label) in &self.x.ticks {
            let (px, _) = self.pixel(*v, self.y.lo);
            let _ = write!(
                s,
                r##"<line x1="{px:.1}" y1="{y1}" x2="{px:.1}" y2="{}" stroke="#e6e8ee"/><line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{}" stroke="#99a"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                y0,
                y0 + 4.0,
                y0 + 15.0,
                esc(label)
            );
        }
        for (v, label) in &self.y.ticks {
            let (_, py) = self.pixel(self.x.lo, *v);
            let _ = write!(
                s,
                r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#e6e8ee"/><line x1="{}" y1="{py:.1}" x2="{x0}" y2="{py:.1}" stroke="#99a"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 4.0,
                x0 - 6.0,
                py + 3.5,
                esc(label)
            );
        }
        let log = if self.y.scale == YScale::Log {
            " (log scale)"
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<text class="plot-title" x="{:.1}" y="16" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="13" y="{:.1}" text-anchor="middle" transform="rotate(-90 13 {:.1})">{}{log}</text>"#,
            PLOT_W / 2.0,
            esc(self.title),
            (x0 + x1) / 2.0,
            PLOT_H - 8.0,
            esc(self.xlabel),
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            esc(self.ylabel)
        );
    }

    fn legend(&self, s: &mut String) {
        if self.lines.len() < 2 {
            return;
        }
        for (i, line) in self.lines.iter().enumerate() {
            let y = TOP + 12.0 + 13.0 * i as f64;
            let x = PLOT_W - RIGHT - 110.0;
            let _ = write!(
                s,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
                x + 14.0,
                esc(line.color),
                x + 18.0,
                y + 3.5,
                esc(line.name)
            );
        }
    }
}
