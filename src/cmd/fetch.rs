//! `sae fetch`: download a model from the Hugging Face hub into the local cache, with a progress bar.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sae_lm::{DownloadEvent, ModelSpec, Progress, ProgressEvent, ProgressHandler};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hugging Face model id, ORG/NAME.
    model: String,
    /// Branch, tag or commit (default: main).
    #[arg(long)]
    revision: Option<String>,
    /// Hugging Face hub cache folder (default: $SAE_HF_CACHE, else $HF_HUB_CACHE, $HF_HOME/hub,
    /// ~/.cache/huggingface/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// Turns hf-hub download events into one byte progress bar.
struct Bar {
    bar: ProgressBar,
    files: Mutex<HashMap<String, (u64, u64)>>,
}

impl ProgressHandler for Bar {
    fn on_progress(&self, event: &ProgressEvent) {
        let ProgressEvent::Download(event) = event else {
            return;
        };
        match event {
            DownloadEvent::Progress { files } => {
                let Ok(mut seen) = self.files.lock() else {
                    return;
                };
                for f in files {
                    seen.insert(f.filename.clone(), (f.bytes_completed, f.total_bytes));
                    self.bar.set_message(f.filename.clone());
                }
                let (done, total) = seen.values().fold((0, 0), |(d, t), (a, b)| (d + a, t + b));
                self.bar.set_length(total.max(done));
                self.bar.set_position(done);
            }
            DownloadEvent::AggregateProgress {
                bytes_completed,
                total_bytes,
                ..
            } => {
                self.bar.set_length(*total_bytes);
                self.bar.set_position(*bytes_completed);
            }
            _ => {}
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = ModelSpec {
        id_or_path: args.model.clone(),
        revision: args.revision.clone(),
        offline: false,
        cache_dir: args.cache_dir.clone(),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let handler = Bar {
        bar: bar.clone(),
        files: Mutex::new(HashMap::new()),
    };
    let resolved = sae_lm::download(&spec, Some(Progress::new(handler))).with_context(|| {
        format!(
            "cannot fetch `{}` into {}",
            args.model,
            spec.cache_dir().display()
        )
    })?;
    bar.finish_and_clear();
    eprintln!("fetched {} at {}", resolved.id, resolved.revision);
    println!("{}", resolved.dir.display());
    Ok(())
}
