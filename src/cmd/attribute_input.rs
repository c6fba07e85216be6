//! The inputs of `sae attribute`: SAE folders at their hooks, the target, the prompts; one clear error each.

use std::path::Path;

use anyhow::{bail, Context as _};
use sae_circuit::{HookedSae, Target};
use sae_lm::{Model, TextTokenizer};

/// `--sae DIR[@HOOK]` -> the SAEs at their hooks.
pub fn load_saes(model: &Model, args: &[String]) -> anyhow::Result<Vec<HookedSae>> {
    let mut out = Vec::new();
    for arg in args {
        let (dir, want) = match arg.rsplit_once('@') {
            Some((d, h)) if h.starts_with("blocks.") => (d, Some(h)),
            _ => (arg.as_str(), None),
        };
        let sae = sae_model::Sae::load(Path::new(dir))
            .with_context(|| format!("cannot load the SAE in {dir}"))?;
        let trained = sae.cfg.metadata.hook_name.clone();
        let name = match (want, trained.as_deref()) {
            (Some(w), Some(t)) if w != t => bail!(
                "the SAE in {dir} was trained on {t}, not on {w}: attribute it at its own hook"
            ),
            (Some(w), _) => w.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => bail!(
                "the SAE in {dir} names no hook (hook_name in cfg.json); give --sae {dir}@blocks.N.hook_..."
            ),
        };
        let hook = model
            .hook(&name)
            .with_context(|| format!("the SAE in {dir} is for {name}"))?;
        if sae.cfg.d_in != model.width(hook) {
            bail!(
                "the SAE in {dir} reads {} values, but {name} of `{}` has {}: it was not trained on this hook",
                sae.cfg.d_in,
                model.arch(),
                model.width(hook)
            );
        }
        out.push(HookedSae { hook, sae });
    }
    Ok(out)
}

/// The target token text -> its one id.
fn one_token(tok: &TextTokenizer, text: &str) -> anyhow::Result<u32> {
    let ids = tok.encode(text)?;
    match ids.as_slice() {
        [id] => Ok(*id),
        _ => bail!(
            "the target {text:?} is {} tokens, not one: give a single token (e.g. with its leading space)",
            ids.len()
        ),
    }
}

/// `--target-token`, `--logit-diff A B`, else the loss.
pub fn parse_target(
    target_token: Option<&str>,
    logit_diff: &[String],
    tok: &TextTokenizer,
) -> anyhow::Result<Target> {
    if let Some(t) = target_token {
        return Ok(Target::Logit {
            token: one_token(tok, t)?,
        });
    }
    if let [x, y] = logit_diff {
        return Ok(Target::LogitDiff {
            a: one_token(tok, x)?,
            b: one_token(tok, y)?,
        });
    }
    Ok(Target::Loss)
}

/// `--prompt TEXT`, else the lines of `--prompts FILE` (blank lines skipped).
pub fn read_prompts(prompt: Option<&str>, prompts: Option<&Path>) -> anyhow::Result<Vec<String>> {
    if let Some(p) = prompt {
        return Ok(vec![p.to_string()]);
    }
    let path = prompts.context("give --prompt or --prompts")?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let prompts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if prompts.is_empty() {
        bail!("{} holds no prompt", path.display());
    }
    Ok(prompts)
}
