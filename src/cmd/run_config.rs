//! The `sae run` config file: model, harvest, training (shared or per hook), evaluation and report
//! settings, and the hash of each stage's inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// A whole run, as written in `configs/quickstart.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Output folder (relative paths resolve against the config file's folder's parent project:
    /// the current directory).
    pub out: PathBuf,
    /// Which model.
    pub model: ModelConfig,
    /// What to harvest.
    pub harvest: HarvestSection,
    /// The `sae train` config (configs/topk.toml's keys) every hook's SAE uses.
    pub train: toml::Table,
    /// Per hook, a `sae train` config that replaces `train` for that hook's SAE.
    #[serde(default)]
    pub hook_train: BTreeMap<String, toml::Table>,
    /// The evaluation.
    #[serde(default)]
    pub eval: EvalSection,
    /// The dashboards.
    #[serde(default)]
    pub report: ReportSection,
}

/// The model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Hugging Face id, local folder or .gguf file.
    pub id: String,
    /// Hub revision.
    pub revision: Option<String>,
    /// Resolve from the local cache only.
    #[serde(default)]
    pub offline: bool,
}

/// The harvest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarvestSection {
    /// One SAE per hook.
    pub hooks: Vec<String>,
    /// Also harvest each hook's layer's MLP neurons (`blocks.N.mlp.hook_post`) for the report's
    /// neuron-vs-latent comparison.
    #[serde(default)]
    pub neurons: bool,
    /// Corpus files or folders.
    pub corpus: Vec<PathBuf>,
    /// Tokens per context.
    #[serde(default = "default_ctx_len")]
    pub ctx_len: usize,
    /// Token budget (rows per hook).
    pub max_tokens: Option<u64>,
    /// Contexts per forward pass.
    pub batch: Option<usize>,
    /// On-disk dtype: f32, f16 or bf16.
    pub dtype: Option<String>,
    /// Train straight from the model's forward pass: no training rows are written to disk, only a
    /// small held-out store per hook (`held_out_tokens` rows) for eval and report; the training
    /// stream starts after it, `max_tokens` rows per epoch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// With `stream`: rows per hook of the held-out store (default 16384).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out_tokens: Option<u64>,
}

impl HarvestSection {
    /// Rows of the held-out store of a streamed run.
    pub fn held_out_rows(&self) -> u64 {
        self.held_out_tokens.unwrap_or(16384)
    }
}

fn default_ctx_len() -> usize {
    128
}

/// The evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Splice each SAE into the model (causal models only) and measure the loss it costs.
    #[serde(default = "yes")]
    pub spliced: bool,
    /// Positions the spliced evaluation scores.
    #[serde(default = "default_eval_tokens")]
    pub max_tokens: u64,
    /// Corpus of the spliced evaluation (default: the harvest's).
    pub corpus: Option<Vec<PathBuf>>,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            spliced: true,
            max_tokens: default_eval_tokens(),
            corpus: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_eval_tokens() -> u64 {
    8192
}

/// The report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Top-activating contexts per unit.
    pub top: Option<usize>,
    /// Rows analysed per store.
    pub max_rows: Option<u64>,
    /// Control groups of the report: "untrained" (the SAE at its initialisation, never trained)
    /// and / or "random" (random unit directions in the hooked space); `sae report --control`.
    #[serde(default)]
    pub controls: Vec<String>,
}

impl RunConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<RunConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let cfg: RunConfig =
            toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        anyhow::ensure!(!cfg.harvest.hooks.is_empty(), "[harvest] hooks is empty");
        for hook in cfg.hook_train.keys() {
            anyhow::ensure!(
                cfg.harvest.hooks.contains(hook),
                "[hook_train.\"{hook}\"] names a hook that [harvest] hooks does not list"
            );
        }
        let h = &cfg.harvest;
        anyhow::ensure!(
            h.stream || h.held_out_tokens.is_none(),
            "[harvest] held_out_tokens applies only with stream = true"
        );
        anyhow::ensure!(
            !(h.stream && h.dtype.is_some()),
            "[harvest] dtype is the on-disk type of stored training rows, and stream = true stores none \
             (the forward pass feeds f32 rows to training): remove dtype or stream"
        );
        for c in &cfg.report.controls {
            anyhow::ensure!(
                ["untrained", "random"].contains(&c.as_str()),
                "[report] controls: {c:?} is not a control (\"untrained\" or \"random\")"
            );
        }
        Ok(cfg)
    }

    /// The training config of one hook's SAE.
    pub fn train_for(&self, hook: &str) -> &toml::Table {
        self.hook_train.get(hook).unwrap_or(&self.train)
    }

    /// Every hook harvested: the SAE hooks, then the neuron hooks they need.
    pub fn harvest_hooks(&self) -> Vec<String> {
        let mut all = self.harvest.hooks.clone();
        for n in self
            .harvest
            .hooks
            .iter()
            .filter_map(|h| self.neuron_hook(h))
        {
            if !all.contains(&n) {
                all.push(n);
            }
        }
        all
    }

    /// The MLP-neuron hook of a hook's layer, when neurons are harvested.
    pub fn neuron_hook(&self, hook: &str) -> Option<String> {
        let layer = sae_lm::Hook::parse(hook)?.layer;
        self.harvest
            .neurons
            .then(|| format!("blocks.{layer}.mlp.hook_post"))
    }
}

/// FNV-1a, 64 bit.
fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of the JSON of every part, each followed by a 0 byte: a stage's inputs fingerprint.
pub fn fingerprint(parts: &[serde_json::Value]) -> String {
    let h = parts.iter().fold(FNV_OFFSET, |h, p| {
        fnv1a(h, p.to_string().bytes().chain([0u8]))
    });
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, *b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, *b"foobar"), 0x85944171f73967e8);
        let a = fingerprint(&[serde_json::json!("x"), serde_json::json!(1)]);
        assert_ne!(
            a,
            fingerprint(&[serde_json::json!("x"), serde_json::json!(2)])
        );
        assert_ne!(a, fingerprint(&[serde_json::json!("x1")]));
    }

    #[test]
    fn shipped_configs_ask_for_both_report_controls_and_bad_ones_are_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for name in ["quickstart.toml", "smollm2.toml"] {
            let cfg = RunConfig::load(&root.join(name)).unwrap();
            assert_eq!(cfg.report.controls, ["untrained", "random"], "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(root.join("quickstart.toml"))
            .unwrap()
            .replace(
                r#"controls = ["untrained", "random"]"#,
                r#"controls = ["trained"]"#,
            );
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", RunConfig::load(&path).unwrap_err());
        assert!(err.contains("\"trained\" is not a control"), "{err}");
    }

    #[test]
    fn the_streamed_config_streams_and_held_out_tokens_needs_stream() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let cfg = RunConfig::load(&root.join("quickstart-stream.toml")).unwrap();
        assert!(cfg.harvest.stream && cfg.harvest.dtype.is_none());
        assert_eq!(cfg.harvest.held_out_rows(), 16384);
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(root.join("quickstart-stream.toml"))
            .unwrap()
            .replace("stream = true", "stream = false");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", RunConfig::load(&path).unwrap_err());
        assert!(
            err.contains("held_out_tokens applies only with stream"),
            "{err}"
        );
        // The stored configs' fingerprints do not see the new keys.
        let stored = RunConfig::load(&root.join("quickstart.toml")).unwrap();
        let json = serde_json::json!(stored.harvest).to_string();
        assert!(
            !json.contains("stream") && !json.contains("held_out"),
            "{json}"
        );
    }
}
