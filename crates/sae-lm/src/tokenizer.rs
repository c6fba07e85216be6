//! Tokenizers: tokenizer.json through the `tokenizers` crate (truncation and padding off), or a byte-level BPE
//! built from GGUF metadata; plus the special tokens a context starts and ends with.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{LmError, Result};
use crate::files::ModelFiles;
use crate::hub::ResolvedModel;
use crate::models::gguf::GgufFile;

/// The Llama 3 / Qwen2 pre-tokenizer split (llama.cpp `llama-bpe`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A model's tokenizer and the special tokens around each context.
pub struct TextTokenizer {
    inner: Tokenizer,
    source: PathBuf,
    describe: String,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    special: HashSet<u32>,
    pad_id: u32,
    /// The token that starts a document (the declared BOS, or `<|endoftext|>` where the vocabulary
    /// has it), whether or not the model adds it by itself.
    bos: Option<u32>,
}

impl TextTokenizer {
    /// The tokenizer of a resolved model: its tokenizer.json, or the GGUF file's metadata.
    pub fn load(model: &ResolvedModel) -> Result<TextTokenizer> {
        match &model.files {
            ModelFiles::Gguf { file } => TextTokenizer::from_gguf(&GgufFile::open(file)?),
            ModelFiles::Safetensors {
                tokenizer: Some(path),
                ..
            } => TextTokenizer::from_file(path),
            ModelFiles::Safetensors {
                tokenizer: None, ..
            } => Err(LmError::MissingFile {
                what: "tokenizer.json",
                path: model.dir.join("tokenizer.json"),
            }),
        }
    }

    /// Reads a tokenizer.json and turns off its truncation and padding.
    pub fn from_file(path: &Path) -> Result<TextTokenizer> {
        let err = |message: String| LmError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let mut inner = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        inner
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        inner.with_padding(None);
        // The specials the post-processor puts around a text: compare one text with and without them.
        let probe = "hello";
        let with = inner
            .encode(probe, true)
            .map_err(|e| err(e.to_string()))?
            .get_ids()
            .to_vec();
        let without = inner
            .encode(probe, false)
            .map_err(|e| err(e.to_string()))?
            .get_ids()
            .to_vec();
        let at = (0..=with.len().saturating_sub(without.len()))
            .find(|&i| with[i..].starts_with(&without))
            .ok_or_else(|| err("cannot locate the text between the special tokens".into()))?;
        let prefix = with[..at].to_vec();
        let suffix = with[at + without.len()..].to_vec();
        let special: HashSet<u32> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect();
        let pad_id = ["[PAD]", "<pad>", "<|endoftext|>", "</s>"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .unwrap_or(0);
        let bos = ["<|begin_of_text|>", "<|endoftext|>", "<s>"]
            .iter()
            .find_map(|t| inner.token_to_id(t));
        Ok(TextTokenizer {
            describe: format!("tokenizer.json ({})", path.display()),
            inner,
            source: path.to_path_buf(),
            prefix,
            suffix,
            special,
            pad_id,
            bos,
        })
    }

    /// Builds the byte-level BPE a GGUF file describes (`tokenizer.ggml.model` = `gpt2`), with its control
    /// tokens as special tokens and BOS prepended when `tokenizer.ggml.add_bos_token` says so.
    pub fn from_gguf(g: &GgufFile) -> Result<TextTokenizer> {
        let err = |message: String| LmError::Tokenizer {
            path: g.path.clone(),
            message,
        };
        let text = |key: &str| -> Result<String> {
            Ok(g.meta(key)?
                .to_string()
                .map_err(|e| err(format!("{key}: {e}")))?
                .clone())
        };
        let kind = text("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(err(format!(
                "GGUF tokenizer model `{kind}` is not supported (only byte-level BPE `gpt2`)"
            )));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            let values = g
                .meta(key)?
                .to_vec()
                .map_err(|e| err(format!("{key}: {e}")))?;
            values
                .iter()
                .map(|v| {
                    v.to_string()
                        .cloned()
                        .map_err(|e| err(format!("{key}: {e}")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| err(format!("bad merge `{m}`")))
            })
            .collect::<Result<_>>()?;
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| err(e.to_string()))?;
        let pre = match g
            .meta_opt("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
        {
            None | Some("default") | Some("gpt2") => {
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true))
            }
            Some("smollm") => PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
            ])),
            Some("llama-bpe") | Some("llama3") | Some("qwen2") => {
                let split = Split::new(
                    SplitPattern::Regex(LLAMA3_SPLIT.into()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| err(e.to_string()))?;
                PreTokenizerWrapper::Sequence(Sequence::new(vec![
                    PreTokenizerWrapper::Split(split),
                    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
                ]))
            }
            Some(other) => {
                return Err(err(format!(
                "GGUF pre-tokenizer `{other}` is not supported (gpt2, smollm, llama-bpe, qwen2)"
            )))
            }
        };
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
        // llama.cpp token types: 3 = control, 4 = user-defined; both are matched whole in text.
        let types: Vec<i64> = match g
            .meta_opt("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
        {
            Some(v) => v
                .iter()
                .map(|t| t.to_i32().map(i64::from).unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3 || t == 4)
            .map(|(tok, _)| AddedToken::from(tok.clone(), true))
            .collect();
        inner
            .add_special_tokens(specials.clone())
            .map_err(|e| err(e.to_string()))?;
        let special: HashSet<u32> = specials
            .iter()
            .filter_map(|t| inner.token_to_id(&t.content))
            .collect();
        let id = |key: &str| g.meta_opt(key).and_then(|v| v.to_u32().ok());
        let add_bos = g
            .meta_opt("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        // The token that starts documents in pretraining: `<|endoftext|>` where the vocabulary has it
        // (SmolLM2's declared BOS is the chat token <|im_start|>, after which the next token still
        // becomes an attention sink), else the declared BOS.
        let bos = inner
            .token_to_id("<|endoftext|>")
            .or(id("tokenizer.ggml.bos_token_id"));
        let prefix = match (add_bos, id("tokenizer.ggml.bos_token_id")) {
            (true, Some(bos)) => vec![bos],
            _ => Vec::new(),
        };
        let pad_id = id("tokenizer.ggml.padding_token_id")
            .or(id("tokenizer.ggml.eos_token_id"))
            .unwrap_or(0);
        Ok(TextTokenizer {
            describe: format!("gguf byte-level BPE ({})", g.path.display()),
            inner,
            source: g.path.clone(),
            prefix,
            suffix: Vec::new(),
            special,
            pad_id,
            bos,
        })
    }

    /// Token ids of `text`, with no special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| LmError::Tokenizer {
                path: self.source.clone(),
                message: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of token ids (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| LmError::Tokenizer {
                path: self.source.clone(),
                message: e.to_string(),
            })
    }

    /// Special tokens the model expects before every context (BOS, [CLS]).
    pub fn prefix(&self) -> &[u32] {
        &self.prefix
    }

    /// Puts the BOS token before every context when the tokenizer does not already add special tokens
    /// there (SAELens' `prepend_bos`). A causal LM dumps attention on its first position, whose residual
    /// norm is then ~100x the others (SmolLM2: ~23,500 vs ~170); with BOS prepended that position is a
    /// special token, left out of the store, instead of the first word of the text.
    /// Returns whether BOS was added; the description (recorded in manifests) says so.
    pub fn prepend_bos(&mut self) -> bool {
        match self.bos {
            Some(bos) if self.prefix.is_empty() => {
                self.prefix = vec![bos];
                self.special.insert(bos);
                let name = self.inner.id_to_token(bos).unwrap_or_default();
                self.describe = format!("{}, BOS {name} prepended", self.describe);
                true
            }
            _ => false,
        }
    }

    /// Special tokens the model expects after every context ([SEP]).
    pub fn suffix(&self) -> &[u32] {
        &self.suffix
    }

    /// Whether `id` is a special token (not stored unless asked).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.contains(&id)
    }

    /// The id used to pad contexts in a batch.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Where the tokenizer came from, for manifests.
    pub fn describe(&self) -> &str {
        &self.describe
    }
}
