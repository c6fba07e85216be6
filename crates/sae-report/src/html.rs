//! The static dashboard: `index.html` (CSS, JS and the report's compact index inlined, see
//! [`crate::page`]) beside a folder of chunk scripts with the units' full data ([`crate::chunks`]),
//! loaded when a card is shown; it opens from the file system. The index JSON is embedded in a
//! `<script type="application/json">` block with `<`, `>`, `&` and the JS line separators escaped,
//! so no corpus text can end the block (the chunk files escape the same way); the page script
//! reads it with `textContent` + `JSON.parse` and builds the DOM with text nodes.
//! The held-out and spliced evaluations and the training curves are static markup (escaped text, inline SVG)
//! rendered by [`crate::sections`], so they show without the script too.

use std::path::Path;

use crate::chunks::{remove_stale_chunks, write_chunks};
use crate::page::PageData;
use crate::schema::{Report, REPORT_FILE};
use crate::sections::{
    heldout_section, notes_block, spliced_section, training_section, transcoder_section,
};
use crate::ReportError;

const TEMPLATE: &str = include_str!("../assets/template.html");
const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");

/// File name of the dashboard inside the output folder.
pub const DASHBOARD_FILE: &str = "index.html";

/// JSON text safe to place inside an HTML `<script>` element.
pub fn json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The dashboard page for `report`, whose chunk files are in the folder `chunk_dir` next to it.
pub fn dashboard_html(report: &Report, chunk_dir: &str) -> Result<String, ReportError> {
    let json = serde_json::to_string(&PageData::new(report, chunk_dir)).map_err(|e| {
        ReportError::BadReport {
            path: DASHBOARD_FILE.into(),
            msg: e.to_string(),
        }
    })?;
    let summary = transcoder_section(report)
        + &heldout_section(report)
        + &spliced_section(report)
        + &notes_block(report);
    fill(
        TEMPLATE,
        &[
            ("{{CSS}}", CSS),
            ("{{SUMMARY}}", &summary),
            ("{{TRAINING}}", &training_section(report)),
            ("{{DATA}}", &json_for_script(&json)),
            ("{{JS}}", JS),
        ],
    )
}

/// `template` with each marker replaced by its text, in one pass over the template (so nothing
/// inside a filled text is ever taken for a marker); each marker must occur once, in this order.
fn fill(template: &str, parts: &[(&str, &str)]) -> Result<String, ReportError> {
    let mut out =
        String::with_capacity(template.len() + parts.iter().map(|p| p.1.len()).sum::<usize>());
    let mut rest = template;
    for (marker, text) in parts {
        let at = rest.find(marker).ok_or_else(|| ReportError::BadReport {
            path: DASHBOARD_FILE.into(),
            msg: format!("the page template has no {marker} after the previous marker"),
        })?;
        out.push_str(&rest[..at]);
        out.push_str(text);
        rest = &rest[at + marker.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `report.json` (atomically) into `dir`, creating the folder.
pub fn write_report(dir: &Path, report: &Report) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(REPORT_FILE);
    let json = serde_json::to_vec(report).map_err(|e| ReportError::BadReport {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    sae_store::atomic_write(&path, &json)?;
    Ok(())
}

/// Writes the dashboard into `dir`, creating the folder: the chunk folder first (complete before
/// it gets its name), then `index.html` naming it (atomically), then removes the chunk folders of
/// earlier runs.
pub fn write_dashboard(dir: &Path, report: &Report) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let chunk_dir = write_chunks(dir, report)?;
    let html = dashboard_html(report, &chunk_dir)?;
    sae_store::atomic_write(&dir.join(DASHBOARD_FILE), html.as_bytes())?;
    remove_stale_chunks(dir, &chunk_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_block() {
        let json = serde_json::to_string(
            &serde_json::json!({"t": "</script><img src=x onerror=alert(1)>&\u{2028}"}),
        )
        .unwrap();
        let safe = json_for_script(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["t"], "</script><img src=x onerror=alert(1)>&\u{2028}");
    }

    #[test]
    fn markers_are_filled_once_in_order() {
        let t = "a {{X}} b {{Y}} c";
        assert_eq!(
            fill(t, &[("{{X}}", "{{Y}}"), ("{{Y}}", "2")]).unwrap(),
            "a {{Y}} b 2 c"
        );
        assert!(fill(t, &[("{{Y}}", "2"), ("{{X}}", "1")]).is_err());
        // The page template's markers are in the order dashboard_html fills them.
        let parts: Vec<(&str, &str)> = [
            "{{CSS}}",
            "{{SUMMARY}}",
            "{{TRAINING}}",
            "{{DATA}}",
            "{{JS}}",
        ]
        .iter()
        .map(|m| (*m, ""))
        .collect();
        let page = fill(TEMPLATE, &parts).unwrap();
        assert!(!page.contains("{{"));
    }

    #[test]
    fn assets_hold_no_script_end_or_html_sinks() {
        assert!(!JS.to_lowercase().contains("</script"));
        assert!(!CSS.to_lowercase().contains("</style"));
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!JS.contains(sink), "dashboard.js uses {sink}");
        }
        for marker in [
            "{{CSS}}",
            "{{SUMMARY}}",
            "{{TRAINING}}",
            "{{JS}}",
            "{{DATA}}",
        ] {
            assert_eq!(TEMPLATE.matches(marker).count(), 1);
        }
    }
}
