//! `sae run CONFIG.toml`: harvest -> train (one SAE per hook) -> eval -> report in one command. Each
//! stage records a fingerprint of its inputs in OUT/run/; a rerun skips stages whose record matches,
//! resumes the one a crash interrupted, and redoes (after removing its old output) those whose inputs
//! changed, and everything downstream of them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::run_config::{fingerprint, RunConfig};
use super::run_summary::{print_summary, SaeSummary};

/// Run the whole pipeline from one config file (see configs/quickstart.toml).
#[derive(clap::Args)]
pub struct Args {
    /// The run's TOML config.
    config: PathBuf,
    /// Output folder (overrides the config's `out`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What OUT/run/<stage>.json says.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    stage: String,
    hash: String,
    finished: bool,
}

/// The stage records of one output folder.
pub struct Stages {
    dir: PathBuf,
}

impl Stages {
    fn record_path(&self, stage: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", stage.replace([' ', '/'], "-")))
    }

    fn write(&self, stage: &str, hash: &str, finished: bool) -> anyhow::Result<()> {
        let r = Record {
            stage: stage.into(),
            hash: hash.into(),
            finished,
        };
        let path = self.record_path(stage);
        sae_store::atomic_write(&path, serde_json::to_string(&r)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Runs `stage` unless its record says it finished with these inputs. `work` gets `resume`: true
    /// when a run with the same inputs was interrupted (its outputs are partial, not stale).
    pub fn run(
        &self,
        stage: &str,
        hash: &str,
        outputs: &[PathBuf],
        work: impl FnOnce(bool) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let path = self.record_path(stage);
        let old: Option<Record> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let resume = match old {
            Some(r) if r.hash == hash && r.finished => {
                eprintln!("[{stage}] up to date, skipped");
                return Ok(());
            }
            Some(r) if r.hash == hash => {
                eprintln!("[{stage}] resuming an interrupted run");
                true
            }
            old => {
                for o in outputs.iter().filter(|o| o.exists()) {
                    anyhow::ensure!(
                        old.is_some(),
                        "{} exists but no record of this run made it; remove it or choose another out",
                        o.display()
                    );
                    remove(o)?;
                }
                eprintln!("[{stage}] running");
                false
            }
        };
        self.write(stage, hash, false)?;
        work(resume).with_context(|| format!("stage `{stage}` failed"))?;
        self.write(stage, hash, true)
    }
}

fn remove(p: &Path) -> anyhow::Result<()> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
    r.with_context(|| format!("cannot remove the stale {}", p.display()))
}

/// Parses a subcommand's arguments as its command line would.
fn parse<T: clap::Args>(argv: &[String]) -> anyhow::Result<T> {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Wrap<T: clap::Args> {
        #[command(flatten)]
        inner: T,
    }
    Ok(Wrap::<T>::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))?
        .inner)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = RunConfig::load(&args.config)?;
    let out = args.out.clone().unwrap_or_else(|| cfg.out.clone());
    let _lock = sae_store::OutputLock::acquire(&out, "sae run")
        .with_context(|| format!("cannot write into {}", out.display()))?;
    let stages = Stages {
        dir: out.join("run"),
    };
    std::fs::create_dir_all(&stages.dir)
        .with_context(|| format!("cannot create {}", stages.dir.display()))?;
    let acts = out.join("acts");
    let harvest_hash = fingerprint(&[json!(cfg.model), json!(cfg.harvest)]);
    stages.run(
        "harvest",
        &harvest_hash,
        std::slice::from_ref(&acts),
        |_| super::harvest::run(parse(&harvest_argv(&cfg, &acts))?),
    )?;
    // Streamed: one training stage for every hook (one forward pass), then each SAE's eval and report.
    let streamed = match cfg.harvest.stream {
        true => Some(super::run_stream::train_stage(
            &cfg,
            &stages,
            &harvest_hash,
            &acts,
            &out,
        )?),
        false => None,
    };
    let mut lm = None;
    let mut summaries = Vec::new();
    for hook in &cfg.harvest.hooks {
        let sae = out.join("sae").join(hook);
        let train_hash = match &streamed {
            Some(h) => h.clone(),
            None => {
                let h = fingerprint(&[json!(harvest_hash), json!(cfg.train_for(hook))]);
                stages.run(
                    &format!("train {hook}"),
                    &h,
                    std::slice::from_ref(&sae),
                    |resume| train(&cfg, &stages.dir, &acts.join(hook), &sae, hook, resume),
                )?;
                h
            }
        };
        // A `[[sweep]]` in the training config trains one SAE per entry, into sae/<hook>/<name>/.
        for name in sweep_names(cfg.train_for(hook)) {
            let (label, sae, report) = match &name {
                None => (hook.clone(), sae.clone(), out.join("report").join(hook)),
                Some(n) => (
                    format!("{hook}/{n}"),
                    sae.join(n),
                    out.join("report").join(hook).join(n),
                ),
            };
            let member = Member {
                label: &label,
                hook,
                store: acts.join(hook),
                sae,
                report,
            };
            summaries.push(eval_and_report(
                &cfg,
                &stages,
                &train_hash,
                &member,
                &mut lm,
            )?);
        }
    }
    print_summary(&summaries);
    Ok(())
}

/// The file the run's store evaluation writes into each SAE folder.
pub const EVAL_FILE: &str = "eval.json";

/// The entries of a `[[sweep]]` array in a training config (`None`: a single SAE).
fn sweep_names(train: &toml::Table) -> Vec<Option<String>> {
    match train.get("sweep").and_then(|v| v.as_array()) {
        None => vec![None],
        Some(entries) => entries
            .iter()
            .map(|e| e.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect(),
    }
}

/// One trained SAE of the run: where it is, what it was trained on, where its report goes.
struct Member<'a> {
    label: &'a str,
    hook: &'a str,
    store: PathBuf,
    sae: PathBuf,
    report: PathBuf,
}

/// The eval and report stages of one SAE.
fn eval_and_report(
    cfg: &RunConfig,
    stages: &Stages,
    train_hash: &str,
    m: &Member<'_>,
    lm: &mut Option<super::eval_spliced::Loaded>,
) -> anyhow::Result<SaeSummary> {
    let eval_hash = fingerprint(&[json!(train_hash), json!(m.label), json!(cfg.eval)]);
    let evals = [
        m.sae.join(EVAL_FILE),
        m.sae.join(super::eval_spliced::SPLICED_FILE),
    ];
    stages.run(&format!("eval {}", m.label), &eval_hash, &evals, |_| {
        evaluate(cfg, &m.store, &m.sae, m.hook, lm)
    })?;
    let report_hash = fingerprint(&[json!(eval_hash), json!(cfg.report)]);
    stages.run(
        &format!("report {}", m.label),
        &report_hash,
        std::slice::from_ref(&m.report),
        |_| super::report::run(parse(&report_argv(cfg, m))?),
    )?;
    Ok(SaeSummary::read(m.label, &m.sae, &m.report))
}

fn harvest_argv(cfg: &RunConfig, acts: &Path) -> Vec<String> {
    let h = &cfg.harvest;
    let mut a = strs(&["--model", &cfg.model.id, "--out", &path(acts)]);
    for hook in cfg.harvest_hooks() {
        a.extend(strs(&["--hook", &hook]));
    }
    a.push("--corpus".into());
    a.extend(h.corpus.iter().map(|p| path(p)));
    a.extend(strs(&["--ctx-len", &h.ctx_len.to_string()]));
    // Streamed, the harvest writes only the held-out store (half eval split, half the sample an
    // untrained report control initialises from); the stream trains on what follows it.
    let max_tokens = match h.stream {
        true => Some(h.held_out_rows()),
        false => h.max_tokens,
    };
    if h.stream {
        a.extend(strs(&["--eval-frac", "0.5"]));
    }
    let opt = [
        ("--max-tokens", max_tokens.map(|v| v.to_string())),
        ("--batch", h.batch.map(|v| v.to_string())),
        ("--dtype", h.dtype.clone()),
        ("--revision", cfg.model.revision.clone()),
    ];
    for (flag, v) in opt {
        if let Some(v) = v {
            a.extend([flag.to_string(), v]);
        }
    }
    if cfg.model.offline {
        a.push("--offline".into());
    }
    a
}

fn train(
    cfg: &RunConfig,
    run_dir: &Path,
    store: &Path,
    sae: &Path,
    hook: &str,
    resume: bool,
) -> anyhow::Result<()> {
    let dirs: Vec<PathBuf> = sweep_names(cfg.train_for(hook))
        .into_iter()
        .map(|n| n.map_or_else(|| sae.to_path_buf(), |n| sae.join(n)))
        .collect();
    let has_checkpoint = |d: &PathBuf| sae_train::checkpoint::checkpoint_path(d).exists();
    let checkpoint = dirs.iter().any(has_checkpoint);
    let finished = dirs
        .iter()
        .all(|d| d.join("sae_weights.safetensors").exists() && !has_checkpoint(d));
    if resume && finished {
        return Ok(()); // killed after the SAEs were saved, before the record said so
    }
    if sae.exists() && !checkpoint {
        remove(sae)?; // interrupted before its first checkpoint: start again
    }
    let config = run_dir.join(format!("train-{hook}.toml"));
    let text = toml::to_string(cfg.train_for(hook))?;
    sae_store::atomic_write(&config, text.as_bytes())?;
    let mut a = strs(&[
        "--store",
        &path(store),
        "--out",
        &path(sae),
        "--config",
        &path(&config),
    ]);
    if checkpoint {
        a.push("--resume".into());
    }
    super::train::run(parse(&a)?)
}

fn evaluate(
    cfg: &RunConfig,
    store: &Path,
    sae_dir: &Path,
    hook: &str,
    lm: &mut Option<super::eval_spliced::Loaded>,
) -> anyhow::Result<()> {
    let sae = sae_model::Sae::load(sae_dir)?;
    let st = sae_store::Store::open(store)?;
    let m = sae_model::evaluate_report(&sae, &st, None, None)?;
    let text = serde_json::to_string_pretty(&m)? + "\n";
    sae_store::atomic_write(&sae_dir.join(EVAL_FILE), text.as_bytes())?;
    if !cfg.eval.spliced {
        return Ok(());
    }
    let corpus = cfg.eval.corpus.as_ref().unwrap_or(&cfg.harvest.corpus);
    let mut a = strs(&["--model", &cfg.model.id, "--hook", hook, "--corpus"]);
    a.extend(corpus.iter().map(|p| path(p)));
    a.extend(strs(&["--ctx-len", &cfg.harvest.ctx_len.to_string()]));
    a.extend(strs(&["--max-tokens", &cfg.eval.max_tokens.to_string()]));
    if cfg.model.offline {
        a.push("--offline".into());
    }
    if let Some(r) = &cfg.model.revision {
        a.extend(strs(&["--revision", r]));
    }
    let args: super::eval_spliced::SplicedArgs = parse(&a)?;
    if lm.is_none() {
        *lm = Some(super::eval_spliced::load(&args)?);
    }
    let lm = lm.as_ref().expect("just loaded");
    if !lm.model.is_causal() {
        eprintln!(
            "[eval {hook}] {} is an encoder: no spliced evaluation",
            cfg.model.id
        );
        return Ok(());
    }
    super::eval_spliced::run_loaded(&args, lm, &sae, sae_dir, false)
}

fn report_argv(cfg: &RunConfig, m: &Member<'_>) -> Vec<String> {
    let acts = m.store.parent().unwrap_or(Path::new("."));
    let mut a = strs(&["--sae", &path(&m.sae), "--store", &path(&m.store)]);
    a.extend(strs(&["--out", &path(&m.report), "--model", &cfg.model.id]));
    if let Some(n) = cfg.neuron_hook(m.hook) {
        a.extend(strs(&["--neurons", &path(&acts.join(n))]));
    }
    if let Some(t) = cfg.report.top {
        a.extend(strs(&["--top", &t.to_string()]));
    }
    if let Some(r) = cfg.report.max_rows {
        a.extend(strs(&["--max-rows", &r.to_string()]));
    }
    for c in &cfg.report.controls {
        a.extend(strs(&["--control", c]));
    }
    a
}
