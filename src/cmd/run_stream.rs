//! `sae run` with `[harvest] stream = true`: every hook's SAEs train straight from the model's forward
//! pass (one pass for all hooks; `sae_harvest::Stream`), wired into sae-train as its batch sources. The
//! harvest stage then writes only the small held-out store per hook that eval and report read, and the
//! stream starts where that store ends, so the training rows never overlap it and never reach the disk.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sae_harvest::{Corpus, Cursor, Stream, StreamBatches, StreamConfig};
use sae_store::{ShuffleOptions, Store};
use sae_train::{BatchSource, DataInfo, MultiOptions, RunSpec, Sources, SweepConfig, TrainError};
use serde_json::json;

use super::harvest::ModelArgs;
use super::run::Stages;
use super::run_config::{fingerprint, RunConfig};

/// The piece log of the stream (corpus position and rows of each piece), beside the SAE folders.
pub const PIECE_LOG: &str = "stream-pieces.jsonl";

/// Contexts per forward pass when the config gives none (`sae harvest --batch`'s default).
const DEFAULT_BATCH: usize = 16;
/// `sae harvest --max-norm-ratio`'s default.
const MAX_NORM_RATIO: f32 = 10.0;

fn source_err(e: sae_harvest::HarvestError) -> TrainError {
    TrainError::Source(Box::new(e))
}

/// One consumer of the stream as a sae-train batch source.
struct Live<'s, 'e>(StreamBatches<'s, 'e>);

impl BatchSource for Live<'_, '_> {
    fn init_sample(&mut self, rows: usize, seed: u64) -> sae_train::Result<Vec<f32>> {
        self.0.init_sample(rows, seed).map_err(source_err)
    }

    fn skip_batches(&mut self, n: u64) -> sae_train::Result<()> {
        self.0.skip_batches(n).map_err(source_err)
    }

    fn next_batch_into(&mut self, out: &mut [f32]) -> sae_train::Result<()> {
        self.0.next_batch_into(out).map_err(source_err)
    }

    fn progress(&self) -> u64 {
        self.0.pieces_taken()
    }

    fn persist(&mut self) -> sae_train::Result<()> {
        self.0.persist().map_err(source_err)
    }
}

/// The specs name their hook's held-out store (`acts/<hook>`): it gives the width and provenance,
/// and its folder name the hook whose rows the stream feeds them.
struct LiveSources<'a, 's, 'e> {
    stream: &'a Stream<'s, 'e>,
}

impl<'s, 'e: 's> Sources<'s> for LiveSources<'_, 's, 'e> {
    fn info(&mut self, spec: &RunSpec) -> sae_train::Result<DataInfo> {
        let store = Store::open(&spec.store)?;
        Ok(DataInfo {
            d_out: None,
            hook_out: None,
            d: store.d(),
            source: store.manifest().source.clone(),
            path: format!("stream (held-out rows in {})", spec.store.display()),
        })
    }

    fn open(
        &mut self,
        spec: &RunSpec,
        opts: ShuffleOptions,
    ) -> sae_train::Result<Box<dyn BatchSource + 's>> {
        let hook = spec.store.file_name().unwrap_or_default().to_string_lossy();
        let c = self.stream.consumer(&hook, opts).map_err(source_err)?;
        Ok(Box::new(Live(c)))
    }
}

/// The fingerprint of the streamed training stage.
pub fn train_hash(cfg: &RunConfig, harvest_hash: &str) -> String {
    let mut parts = vec![json!(harvest_hash), json!("stream")];
    parts.extend(cfg.harvest.hooks.iter().map(|h| json!(cfg.train_for(h))));
    fingerprint(&parts)
}

/// Runs (or resumes, or skips) the streamed training stage of every hook.
pub fn train_stage(
    cfg: &RunConfig,
    stages: &Stages,
    harvest_hash: &str,
    acts: &Path,
    out: &Path,
) -> anyhow::Result<String> {
    let hash = train_hash(cfg, harvest_hash);
    let sae = out.join("sae");
    stages.run("train (stream)", &hash, std::slice::from_ref(&sae), |_| {
        train(cfg, acts, &sae)
    })?;
    Ok(hash)
}

/// Every SAE of every hook; each resumes from its own checkpoint when it has one.
fn specs(cfg: &RunConfig, acts: &Path, sae: &Path) -> anyhow::Result<Vec<RunSpec>> {
    let mut all = Vec::new();
    for hook in &cfg.harvest.hooks {
        let text = toml::to_string(cfg.train_for(hook))?;
        let sweep = SweepConfig::from_toml(&text)
            .with_context(|| format!("the training config of {hook}"))?;
        let store = acts.join(hook);
        let dir = sae.join(hook);
        let specs = sae_train::plan(
            &[store],
            false,
            &dir,
            &sweep,
            false,
            sae_train::Backend::Fast,
        )?;
        for mut s in specs {
            let ckpt = sae_train::checkpoint::checkpoint_path(&s.out).exists();
            let done = s.out.join("sae_weights.safetensors").exists();
            s.resume = ckpt || done;
            all.push(s);
        }
    }
    Ok(all)
}

/// Where the stream starts: after the held-out store's last context.
fn start_after(store: &Path) -> anyhow::Result<Cursor> {
    let m = sae_store::Manifest::read(store)?;
    let c: Cursor = match m.cursor {
        Some(v) => serde_json::from_value(v)
            .with_context(|| format!("the harvest cursor of {}", store.display()))?,
        None => Cursor::default(),
    };
    Ok(Cursor { rows: 0, ..c })
}

fn train(cfg: &RunConfig, acts: &Path, sae: &Path) -> anyhow::Result<()> {
    let specs = specs(cfg, acts, sae)?;
    let model = ModelArgs {
        model: cfg.model.id.clone(),
        revision: cfg.model.revision.clone(),
        offline: cfg.model.offline,
        cache_dir: None,
    };
    let (resolved, m) = model.load()?;
    let mut tok = sae_lm::TextTokenizer::load(&resolved)
        .with_context(|| format!("cannot load the tokenizer of `{}`", cfg.model.id))?;
    tok.prepend_bos(); // as `sae harvest` does by default
    let corpus = Corpus::open(&cfg.harvest.corpus)?;
    std::fs::create_dir_all(sae).with_context(|| format!("cannot create {}", sae.display()))?;
    let first: PathBuf = acts.join(&cfg.harvest.hooks[0]);
    let scfg = StreamConfig {
        hooks: cfg.harvest.hooks.clone(),
        ctx_len: cfg.harvest.ctx_len,
        batch: cfg.harvest.batch.unwrap_or(DEFAULT_BATCH),
        keep_special: false,
        max_norm_ratio: Some(MAX_NORM_RATIO),
        start: start_after(&first)?,
        epoch_rows: cfg.harvest.max_tokens,
        model: format!("{}@{}", resolved.id, resolved.revision),
        log: sae.join(PIECE_LOG),
    };
    let names: Vec<String> = specs
        .iter()
        .map(|s| {
            s.out
                .strip_prefix(sae)
                .unwrap_or(&s.out)
                .display()
                .to_string()
        })
        .collect();
    let mut obs = super::train::ManyBar::new(names.clone());
    let summary = std::thread::scope(|scope| -> anyhow::Result<_> {
        let stream = Stream::open(scope, &m, &tok, &corpus, scfg)?;
        let mut sources = LiveSources { stream: &stream };
        let opts = MultiOptions {
            skip_finished: true,
        };
        let summary = sae_train::train_from(&specs, &mut sources, &opts, &mut obs);
        for w in stream.take_warnings() {
            eprintln!("warning: {w}");
        }
        let st = stream.stats();
        eprintln!(
            "streamed {} tokens through the model ({} pieces, {} run again to refill resumed buffers)",
            st.tokens, st.forwards, st.refills
        );
        Ok(summary?)
    })
    .with_context(|| format!("streamed training into {} failed", sae.display()))?;
    obs.finish();
    super::train::report_many(&summary, &names);
    Ok(())
}
