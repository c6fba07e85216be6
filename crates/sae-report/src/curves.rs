//! Training curves: the SAE folder's `metrics.jsonl` (one JSON object per logged step, written by
//! `sae train`) read into per-metric series of (step, value), each downsampled to a bounded number
//! of points that keeps every bucket's minimum and maximum (so a plot's range and spikes survive).
//!
//! Reading is tolerant: a missing file is `None` (an SAE downloaded from SAELens has none), a last
//! line without its newline that does not parse (what a killed run leaves) is dropped and flagged,
//! other lines that do not parse are counted and skipped, values that are null or not finite are
//! left out of their series, and a step logged twice keeps its last line.

use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ReportError;

/// File name of the training log inside an SAE folder (`sae_train::METRICS_FILE`).
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the run's resolved config inside an SAE folder (`sae_train::CONFIG_FILE`).
pub const TRAIN_CONFIG_FILE: &str = "train_config.toml";
/// The config text is kept only up to this size.
const MAX_CONFIG_BYTES: usize = 64 << 10;
/// Points kept per series by default (see [`downsample_min_max`]).
pub const MAX_CURVE_POINTS: usize = 400;

/// The metrics a report plots, in order: (field in metrics.jsonl, label).
pub const CURVE_METRICS: [(&str, &str); 7] = [
    ("loss", "total loss"),
    ("recon", "reconstruction loss"),
    ("aux", "auxiliary loss (AuxK / sparsity penalty)"),
    ("fvu", "fraction of variance unexplained (batch)"),
    ("l0", "active latents per row (L0)"),
    ("dead_frac", "fraction of dead latents"),
    ("lr", "learning rate"),
];

/// One logged step: the fields a report plots (all optional; other fields are ignored).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct MetricLine {
    /// Steps completed.
    pub step: u64,
    /// Total loss.
    pub loss: Option<f64>,
    /// Reconstruction term.
    pub recon: Option<f64>,
    /// AuxK loss or sparsity penalty.
    pub aux: Option<f64>,
    /// Fraction of variance unexplained on the batch.
    pub fvu: Option<f64>,
    /// Mean active latents per row.
    pub l0: Option<f64>,
    /// Fraction of dead latents.
    pub dead_frac: Option<f64>,
    /// Learning rate.
    pub lr: Option<f64>,
}

impl MetricLine {
    /// The value of a field named in [`CURVE_METRICS`].
    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "loss" => self.loss,
            "recon" => self.recon,
            "aux" => self.aux,
            "fvu" => self.fvu,
            "l0" => self.l0,
            "dead_frac" => self.dead_frac,
            "lr" => self.lr,
            _ => None,
        }
    }
}

/// The lines of a metrics.jsonl that parsed, and what was dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsLog {
    /// Lines that parsed, by increasing step (one per step: the last one logged).
    pub lines: Vec<MetricLine>,
    /// Lines that did not parse (not counting a truncated last line).
    pub skipped_lines: u64,
    /// The file ended in a partial line (no newline) that did not parse: a killed run.
    pub truncated_last_line: bool,
}

/// Parses metrics.jsonl text from `reader` (see the module docs for what is tolerated).
pub fn parse_metrics(mut reader: impl BufRead) -> std::io::Result<MetricsLog> {
    let mut log = MetricsLog::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let complete = buf.ends_with(b"\n");
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<MetricLine>(&buf) {
            Ok(m) => log.lines.push(m),
            Err(_) if !complete => log.truncated_last_line = true,
            Err(_) => log.skipped_lines += 1,
        }
    }
    // Stable sort, then keep the last line of each step.
    log.lines.sort_by_key(|m| m.step);
    let mut kept: Vec<MetricLine> = Vec::with_capacity(log.lines.len());
    for m in log.lines.drain(..) {
        match kept.last_mut() {
            Some(prev) if prev.step == m.step => *prev = m,
            _ => kept.push(m),
        }
    }
    log.lines = kept;
    Ok(log)
}

/// One metric over training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveSeries {
    /// Field name in metrics.jsonl (`loss`, `fvu`, ...).
    pub metric: String,
    /// What it measures.
    pub label: String,
    /// Finite values logged.
    pub points_total: u64,
    /// Smallest and largest value over every logged point (not only the kept ones).
    pub min: f64,
    /// See `min`.
    pub max: f64,
    /// Value at the last logged step.
    pub last: f64,
    /// (step, value), by step: every point, or each bucket's min and max plus the first and last.
    pub points: Vec<(u64, f64)>,
}

/// The curves of a training run, for `report.json` and the dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingCurves {
    /// The metrics.jsonl read.
    pub file: String,
    /// Steps logged (lines kept).
    pub logged_steps: u64,
    /// First and last logged step.
    pub first_step: u64,
    /// See `first_step`.
    pub last_step: u64,
    /// Lines that did not parse (skipped).
    pub skipped_lines: u64,
    /// The file ended in a partial line, dropped (a killed run).
    pub truncated_last_line: bool,
    /// Points kept per series at most.
    pub max_points: usize,
    /// One series per metric of [`CURVE_METRICS`] that has at least one value.
    pub series: Vec<CurveSeries>,
    /// Rows per step (the run's `batch`), when its train_config.toml says.
    #[serde(default)]
    pub batch: Option<u64>,
    /// The text of the run's train_config.toml, when present (and under 64 KiB).
    #[serde(default)]
    pub config: Option<String>,
}

impl TrainingCurves {
    /// The series of a metric, if logged.
    pub fn series(&self, metric: &str) -> Option<&CurveSeries> {
        self.series.iter().find(|s| s.metric == metric)
    }
}

/// Indices kept from `values` (in order) so that at most `max_points` remain: every index when
/// there are few enough; else the first and last, and in each of `(max_points - 2) / 2` buckets of
/// consecutive indices (bucket b = [b n / B, (b + 1) n / B)) the first index of its minimum and of
/// its maximum. The kept values therefore have the same min and max as all of them.
pub fn downsample_min_max(values: &[f64], max_points: usize) -> Vec<usize> {
    let n = values.len();
    let max_points = max_points.max(4);
    if n <= max_points {
        return (0..n).collect();
    }
    let buckets = (max_points - 2) / 2;
    let mut keep = vec![0];
    for b in 0..buckets {
        let (lo, hi) = (b * n / buckets, (b + 1) * n / buckets);
        let (mut imin, mut imax) = (lo, lo);
        for i in lo..hi {
            if values[i] < values[imin] {
                imin = i;
            }
            if values[i] > values[imax] {
                imax = i;
            }
        }
        keep.push(imin.min(imax));
        keep.push(imin.max(imax));
    }
    keep.push(n - 1);
    keep.dedup();
    keep
}

/// The series of `metric` in `log`, downsampled to `max_points`; `None` when it has no finite value.
pub fn series_of(
    log: &MetricsLog,
    metric: &str,
    label: &str,
    max_points: usize,
) -> Option<CurveSeries> {
    let all: Vec<(u64, f64)> = log
        .lines
        .iter()
        .filter_map(|m| m.get(metric).filter(|v| v.is_finite()).map(|v| (m.step, v)))
        .collect();
    let (&(_, last), first) = (all.last()?, all[0].1);
    let values: Vec<f64> = all.iter().map(|p| p.1).collect();
    let (min, max) = values
        .iter()
        .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let points = downsample_min_max(&values, max_points)
        .into_iter()
        .map(|i| all[i])
        .collect();
    Some(CurveSeries {
        metric: metric.into(),
        label: label.into(),
        points_total: all.len() as u64,
        min,
        max,
        last,
        points,
    })
}

/// The curves of `log` (read from `file`), every series downsampled to `max_points`.
pub fn curves_from_log(log: &MetricsLog, file: &str, max_points: usize) -> TrainingCurves {
    let series = CURVE_METRICS
        .iter()
        .filter_map(|(metric, label)| series_of(log, metric, label, max_points))
        .collect();
    TrainingCurves {
        file: file.into(),
        logged_steps: log.lines.len() as u64,
        first_step: log.lines.first().map_or(0, |m| m.step),
        last_step: log.lines.last().map_or(0, |m| m.step),
        skipped_lines: log.skipped_lines,
        truncated_last_line: log.truncated_last_line,
        max_points: max_points.max(4),
        series,
        batch: None,
        config: None,
    }
}

/// The top-level `batch = N` of a train_config.toml (the keys before its first `[table]`).
pub fn config_batch(toml: &str) -> Option<u64> {
    toml.lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "batch")
        .and_then(|(_, v)| v.trim().replace('_', "").parse().ok())
}

/// Reads `sae_dir/metrics.jsonl`: `Ok(None)` when the folder has none.
pub fn read_training_curves(
    sae_dir: &Path,
    max_points: usize,
) -> Result<Option<TrainingCurves>, ReportError> {
    let path = sae_dir.join(METRICS_FILE);
    let io = |source| ReportError::Io {
        path: path.clone(),
        source,
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let log = parse_metrics(std::io::BufReader::new(file)).map_err(io)?;
    let mut curves = curves_from_log(&log, &path.display().to_string(), max_points);
    let config = std::fs::read_to_string(sae_dir.join(TRAIN_CONFIG_FILE)).ok();
    curves.batch = config.as_deref().and_then(config_batch);
    curves.config = config.filter(|c| c.len() <= MAX_CONFIG_BYTES);
    Ok(Some(curves))
}
