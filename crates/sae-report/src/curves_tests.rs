//! Tests of metrics.jsonl parsing and the min/max downsampling.

use std::collections::BTreeSet;

use crate::curves::*;

/// Three good lines (as `sae train` writes them), a duplicate step, a line with a NaN written as
/// null, a damaged line in the middle, and a last line cut off by a kill.
const LOG: &str = r#"{"step":10,"loss":2.5,"recon":2.0,"aux":0.5,"fvu":0.9,"l0":16.0,"dead_frac":0.0,"lr":0.002,"rows_per_s":1000.0}
{"step":20,"loss":1.25,"recon":1.0,"aux":0.25,"fvu":0.5,"l0":16.0,"dead_frac":0.01,"lr":0.002,"threshold":0.3,"rows_per_s":1200.0}

{"step":30,"loss":null,"recon":0.5,"aux":0.1,"fvu":0.25,"l0":15.5,"dead_frac":0.02,"lr":0.001}
{"step":20,"loss":1.5,"recon":1.1,"aux":0.4,"fvu":0.55,"l0":16.0,"dead_frac":0.01,"lr":0.002}
{"step":35,"loss":0.8,"fvu"
{"step":40,"loss":0.5,"recon":0.4,"aux":0.1,"fvu":0.2,"l0":15.0,"dead_frac":0.03,"lr":0.0005}
{"step":50,"loss":0.4,"recon":0.3,"aux":0.1,"fvu":0.1"#;

#[test]
fn parses_good_lines_and_tolerates_damage() {
    let log = parse_metrics(LOG.as_bytes()).unwrap();
    let steps: Vec<u64> = log.lines.iter().map(|m| m.step).collect();
    assert_eq!(steps, vec![10, 20, 30, 40]);
    // Step 20 was logged twice: the later line wins.
    assert_eq!(log.lines[1].loss, Some(1.5));
    assert_eq!(log.lines[1].fvu, Some(0.55));
    assert_eq!(log.lines[2].loss, None);
    assert_eq!(log.lines[2].recon, Some(0.5));
    assert_eq!(log.lines[3].lr, Some(0.0005));
    assert_eq!(log.skipped_lines, 1, "the damaged middle line");
    assert!(log.truncated_last_line, "the cut-off last line");
}

#[test]
fn a_clean_file_has_nothing_dropped() {
    let text = "{\"step\":1,\"loss\":1.0}\n{\"step\":2,\"loss\":0.5}\n";
    let log = parse_metrics(text.as_bytes()).unwrap();
    assert_eq!(log.lines.len(), 2);
    assert_eq!((log.skipped_lines, log.truncated_last_line), (0, false));
    // A complete last line without its newline still counts.
    let log = parse_metrics(text.trim_end().as_bytes()).unwrap();
    assert_eq!((log.lines.len(), log.truncated_last_line), (2, false));
}

#[test]
fn series_hold_finite_values_with_their_range() {
    let log = parse_metrics(LOG.as_bytes()).unwrap();
    let c = curves_from_log(&log, "metrics.jsonl", 100);
    assert_eq!((c.logged_steps, c.first_step, c.last_step), (4, 10, 40));
    let loss = c.series("loss").unwrap();
    assert_eq!(loss.points, vec![(10, 2.5), (20, 1.5), (40, 0.5)]);
    assert_eq!(
        (loss.min, loss.max, loss.last, loss.points_total),
        (0.5, 2.5, 0.5, 3)
    );
    let l0 = c.series("l0").unwrap();
    assert_eq!(l0.points.len(), 4);
    assert_eq!((l0.min, l0.max), (15.0, 16.0));
    let names: Vec<&str> = c.series.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(
        names,
        ["loss", "recon", "aux", "fvu", "l0", "dead_frac", "lr"]
    );
}

fn lcg(s: &mut u64) -> f64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*s >> 33) % 1000) as f64 / 10.0
}

/// The kept indices computed directly: 0, n - 1, and per bucket the first position of its
/// smallest and of its largest value.
fn reference(values: &[f64], max_points: usize) -> BTreeSet<usize> {
    let n = values.len();
    if n <= max_points {
        return (0..n).collect();
    }
    let b = (max_points - 2) / 2;
    let mut keep: BTreeSet<usize> = [0, n - 1].into();
    for k in 0..b {
        let bucket = &values[k * n / b..(k + 1) * n / b];
        let lo = bucket.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = bucket.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        keep.insert(k * n / b + bucket.iter().position(|&v| v == lo).unwrap());
        keep.insert(k * n / b + bucket.iter().position(|&v| v == hi).unwrap());
    }
    keep
}

#[test]
fn downsampling_keeps_each_buckets_extremes() {
    let mut s = 3u64;
    for (n, max_points) in [
        (10, 400),
        (1000, 400),
        (1001, 50),
        (12345, 400),
        (97, 10),
        (5, 4),
    ] {
        // Values with ties (a coarse grid) and a spike, so that first-occurrence rules matter.
        let mut values: Vec<f64> = (0..n).map(|_| lcg(&mut s).round()).collect();
        values[n / 3] = 1e6;
        let kept = downsample_min_max(&values, max_points);
        assert!(kept.len() <= max_points, "n {n}: {}", kept.len());
        assert!(
            kept.windows(2).all(|w| w[0] < w[1]),
            "kept indices in order"
        );
        assert_eq!(
            kept.iter().copied().collect::<BTreeSet<_>>(),
            reference(&values, max_points),
            "n {n}"
        );
        let kv: Vec<f64> = kept.iter().map(|&i| values[i]).collect();
        let max = kv.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let min = kv.iter().cloned().fold(f64::INFINITY, f64::min);
        assert_eq!(max, 1e6);
        assert_eq!(min, values.iter().cloned().fold(f64::INFINITY, f64::min));
    }
}

#[test]
fn long_runs_are_bounded_in_the_report() {
    let text: String = (1..=5000u64)
        .map(|s| {
            format!(
                "{{\"step\":{s},\"loss\":{},\"dead_frac\":0.0}}\n",
                10.0 / s as f64
            )
        })
        .collect();
    let log = parse_metrics(text.as_bytes()).unwrap();
    let c = curves_from_log(&log, "m", 200);
    let loss = c.series("loss").unwrap();
    assert!(loss.points.len() <= 200 && loss.points.len() > 100);
    assert_eq!(loss.points_total, 5000);
    assert_eq!(loss.points.first(), Some(&(1, 10.0)));
    assert_eq!(loss.points.last(), Some(&(5000, 10.0 / 5000.0)));
    // A constant series keeps one point per bucket plus the ends.
    assert!(c.series("dead_frac").unwrap().points.len() <= 101);
}

#[test]
fn a_folder_without_metrics_has_no_curves() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_training_curves(dir.path(), 100).unwrap().is_none());
    std::fs::write(dir.path().join(METRICS_FILE), LOG).unwrap();
    let c = read_training_curves(dir.path(), 100).unwrap().unwrap();
    assert!(c.file.ends_with(METRICS_FILE));
    assert_eq!((c.skipped_lines, c.truncated_last_line), (1, true));
    assert_eq!((c.batch, c.config.as_deref()), (None, None));
    let config = "steps = 300\nbatch = 4_096\n\n[arch]\nkind = \"topk\"\nbatch = 7\n";
    std::fs::write(dir.path().join(TRAIN_CONFIG_FILE), config).unwrap();
    let c = read_training_curves(dir.path(), 100).unwrap().unwrap();
    assert_eq!((c.batch, c.config.as_deref()), (Some(4096), Some(config)));
}

#[test]
fn batch_is_read_from_the_top_level_only() {
    assert_eq!(config_batch("batch=512"), Some(512));
    assert_eq!(config_batch("[arch]\nbatch = 7"), None);
    assert_eq!(config_batch("batch_size = 3\nbatches = 4"), None);
    assert_eq!(config_batch("batch = \"x\""), None);
}
