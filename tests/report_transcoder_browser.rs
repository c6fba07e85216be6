//! The dashboard of a transcoder report in headless chromium: the header says "Transcoder report"
//! and `transcoder: IN -> OUT`, and a latent's card names both hooks and its logit lens's space.

mod browser;
mod common;
mod report_transcoder_common;

use common::{ok, s};
use report_transcoder_common::*;

/// The text of the DOM right after `marker`, up to the next tag.
fn text_after<'a>(dom: &'a str, marker: &str) -> &'a str {
    let rest = dom
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker}"));
    rest.split('<').next().unwrap()
}

#[test]
fn dashboard_header_and_card_say_transcoder_in_a_browser() {
    let f = fixture();
    let out = f.dir.path().join("report");
    let (x, y) = (f.store(IN), f.store(OUT));
    let extra = format!("--store {} --target-store {} --max-rows 400", s(&x), s(&y));
    ok(report(&f, &f.tc, &out, extra));
    let index = out.join("index.html").canonicalize().unwrap();
    let dom = browser::dump_dom(&format!("file://{}#latents/0", index.display()));
    assert!(
        dom.contains("data-rendered=\"true\""),
        "page script did not finish:\n{dom}"
    );
    let title = text_after(&dom, "id=\"title\">");
    assert!(
        title.starts_with("Transcoder report: 48 latents"),
        "{title}"
    );
    let meta = text_after(&dom, "id=\"meta\">");
    assert!(
        meta.contains(&format!("transcoder: {IN} -&gt; {OUT}")) && meta.contains("d_out 16"),
        "{meta}"
    );
    let card = text_after(&dom, "id=\"unit-title\">");
    assert!(
        card.contains(&format!("transcoder: {IN} -&gt; {OUT} #0")),
        "{card}"
    );
    assert!(
        dom.contains(&format!(
            "Logit lens of the decoder row (in the space of {OUT})"
        )),
        "no lens on the card"
    );
}
