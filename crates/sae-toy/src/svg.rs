//! A small SVG plotter: axes with linear or log10 scales, ticks, lines, dots, rectangles, text.
//! Every plot is a standalone `<svg>` element (no external resources).

use std::fmt::Write;

/// An axis scale.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// Linear from lo to hi.
    Linear(f64, f64),
    /// log10 from lo to hi (both > 0).
    Log(f64, f64),
}

impl Scale {
    /// Position of `v` in [0, 1].
    fn unit(self, v: f64) -> f64 {
        match self {
            Scale::Linear(lo, hi) => (v - lo) / (hi - lo),
            Scale::Log(lo, hi) => (v.max(1e-300).log10() - lo.log10()) / (hi.log10() - lo.log10()),
        }
    }

    /// Tick values and labels.
    fn ticks(self) -> Vec<(f64, String)> {
        match self {
            Scale::Linear(lo, hi) => {
                let span = hi - lo;
                let raw = span / 5.0;
                let mag = 10f64.powf(raw.log10().floor());
                let step = [1.0, 2.0, 2.5, 5.0, 10.0]
                    .iter()
                    .map(|s| s * mag)
                    .find(|s| *s >= raw)
                    .unwrap_or(10.0 * mag);
                let mut v = (lo / step).ceil() * step;
                let mut out = Vec::new();
                while v <= hi + 1e-9 * span {
                    out.push((v, fmt_num(v)));
                    v += step;
                }
                out
            }
            Scale::Log(lo, hi) => {
                let (a, b) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
                (a..=b)
                    .map(|e| (10f64.powi(e), fmt_num(10f64.powi(e))))
                    .collect()
            }
        }
    }
}

/// A short label for a number.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e4).contains(&a) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Escapes text for SVG/HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plot area with two scales.
pub struct Plot {
    w: f64,
    h: f64,
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
    x: Scale,
    y: Scale,
    body: String,
}

impl Plot {
    /// A `w` x `h` plot with the given scales, title and axis labels.
    pub fn new(
        w: f64,
        h: f64,
        x: Scale,
        y: Scale,
        title: &str,
        xlabel: &str,
        ylabel: &str,
    ) -> Plot {
        let mut p = Plot {
            w,
            h,
            left: 56.0,
            top: 28.0,
            right: 16.0,
            bottom: 44.0,
            x,
            y,
            body: String::new(),
        };
        p.axes(title, xlabel, ylabel);
        p
    }

    /// Pixel x of data value.
    pub fn px(&self, v: f64) -> f64 {
        self.left + self.x.unit(v) * (self.w - self.left - self.right)
    }

    /// Pixel y of data value.
    pub fn py(&self, v: f64) -> f64 {
        self.h - self.bottom - self.y.unit(v) * (self.h - self.top - self.bottom)
    }

    fn axes(&mut self, title: &str, xlabel: &str, ylabel: &str) {
        let (x0, x1) = (self.left, self.w - self.right);
        let (y0, y1) = (self.h - self.bottom, self.top);
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            x1 - x0,
            y0 - y1
        );
        for (v, label) in self.x.ticks() {
            let x = self.px(v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#888"/><text x="{x:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
                y0 + 4.0,
                y0 + 15.0,
                esc(&label)
            );
        }
        for (v, label) in self.y.ticks() {
            let y = self.py(v);
            let _ = write!(
                s,
                r##"<line x1="{}" y1="{y:.1}" x2="{x0}" y2="{y:.1}" stroke="#888"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                x0 - 4.0,
                x0 - 6.0,
                y + 3.0,
                esc(&label)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="16" font-size="12" text-anchor="middle" font-weight="bold">{}</text>"#,
            self.w / 2.0,
            esc(title)
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            self.h - 8.0,
            esc(xlabel)
        );
        let _ = write!(
            s,
            r#"<text x="12" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {:.1})">{}</text>"#,
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            esc(ylabel)
        );
        self.body.push_str(&s);
    }

    /// A polyline through data points.
    pub fn line(&mut self, pts: &[(f64, f64)], color: &str) {
        let d: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.px(*x), self.py(*y)))
            .collect();
        let _ = write!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"#,
            d.join(" ")
        );
    }

    /// A dashed horizontal line at data y with a label.
    pub fn hline(&mut self, y: f64, label: &str) {
        let (x0, x1, py) = (self.left, self.w - self.right, self.py(y));
        let _ = write!(
            self.body,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#bbb" stroke-dasharray="3 3"/><text x="{:.1}" y="{:.1}" font-size="9" fill="#777" text-anchor="end">{}</text>"##,
            x1 - 2.0,
            py - 2.0,
            esc(label)
        );
    }

    /// A dashed vertical line at data x with a label.
    pub fn vline(&mut self, x: f64, label: &str) {
        let (y0, y1, px) = (self.h - self.bottom, self.top, self.px(x));
        let _ = write!(
            self.body,
            r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{y1}" stroke="#bbb" stroke-dasharray="3 3"/><text x="{:.1}" y="{:.1}" font-size="9" fill="#777" text-anchor="middle">{}</text>"##,
            px,
            y1 + 9.0,
            esc(label)
        );
    }

    /// A dot at a data point, with a hover title.
    pub fn dot(&mut self, x: f64, y: f64, r: f64, color: &str, title: &str) {
        let _ = write!(
            self.body,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{color}" fill-opacity="0.7"><title>{}</title></circle>"#,
            self.px(x),
            self.py(y),
            esc(title)
        );
    }

    /// A rectangle between data corners (x0, y0) and (x1, y1).
    pub fn rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, color: &str, title: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let (c, d) = (self.py(y0), self.py(y1));
        let _ = write!(
            self.body,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
            a.min(b),
            c.min(d),
            (b - a).abs(),
            (d - c).abs(),
            esc(title)
        );
    }

    /// Raw SVG markup in pixel coordinates.
    pub fn raw(&mut self, s: &str) {
        self.body.push_str(s);
    }

    /// The finished `<svg>` element; `id` becomes its `id` attribute.
    pub fn finish(self, id: &str) -> String {
        svg_element(id, self.w, self.h, &self.body)
    }

    /// The finished element, `extra` pixels wider than the plot (room for a legend).
    pub fn finish_wider(self, id: &str, extra: f64) -> String {
        svg_element(id, self.w + extra, self.h, &self.body)
    }
}

/// An `<svg>` element of the given size around `body`.
pub fn svg_element(id: &str, w: f64, h: f64, body: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{}" class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">{body}</svg>"#,
        esc(id)
    )
}

/// Diverging colour for v in [-1, 1]: blue (-1), white (0), red (+1).
pub fn diverging(v: f64) -> String {
    let t = v.clamp(-1.0, 1.0);
    let (r, g, b) = if t >= 0.0 {
        (255.0, 255.0 * (1.0 - t), 255.0 * (1.0 - t))
    } else {
        (255.0 * (1.0 + t), 255.0 * (1.0 + t), 255.0)
    };
    format!("rgb({:.0},{:.0},{:.0})", r, g, b)
}

/// Sequential colour for t in [0, 1]: black (0) to yellow (1), as the paper's superposition bars.
pub fn sequential(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    format!(
        "rgb({:.0},{:.0},{:.0})",
        40.0 + 215.0 * t,
        40.0 + 180.0 * t,
        60.0 * (1.0 - t)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_colours() {
        let p = Plot::new(
            200.0,
            100.0,
            Scale::Log(1.0, 100.0),
            Scale::Linear(0.0, 1.0),
            "t",
            "x",
            "y",
        );
        assert!((p.px(10.0) - (56.0 + 0.5 * 128.0)).abs() < 1e-9);
        assert!((p.py(1.0) - 28.0).abs() < 1e-9);
        assert_eq!(diverging(1.0), "rgb(255,0,0)");
        assert_eq!(diverging(-1.0), "rgb(0,0,255)");
        assert_eq!(diverging(0.0), "rgb(255,255,255)");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(esc("<a&b>"), "&lt;a&amp;b&gt;");
        let ticks: Vec<String> = Scale::Linear(0.0, 1.0)
            .ticks()
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(ticks, vec!["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    }
}
