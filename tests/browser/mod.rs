//! Headless chromium for the browser tests (the dashboard, the toy page): where it is, and the DOM
//! of a page after its scripts ran. `scripts/install-chromium.sh` installs it (`scripts/setup.sh`
//! and `scripts/browser-test.sh` run it).

use std::process::Command;

/// The chromium binary: `SAE_CHROMIUM`, else `chromium` or `chromium-browser` on the PATH.
pub fn chromium() -> String {
    if let Ok(p) = std::env::var("SAE_CHROMIUM") {
        return p;
    }
    for name in ["chromium", "chromium-browser"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output();
        if let Ok(o) = found {
            if o.status.success() {
                return String::from_utf8_lossy(&o.stdout).trim().to_string();
            }
        }
    }
    panic!(
        "chromium not found: the browser tests need Debian's chromium. Run \
         scripts/install-chromium.sh or `apt-get install -y chromium`, or set SAE_CHROMIUM to a \
         chromium binary."
    );
}

/// The DOM after the page's scripts ran, as chromium serialises it.
pub fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("timeout")
        .arg("90")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("starting chromium");
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}
