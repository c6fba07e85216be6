//! What the report needs from a model: readable token text and the logit lens (a residual direction read
//! through the final norm's weight and the unembedding).

use candle_core::{Device, Tensor};

use crate::error::{LmError, Result};
use crate::hub::ResolvedModel;
use crate::models::Model;
use crate::tokenizer::TextTokenizer;

/// Readable text of single tokens.
pub struct TokenText {
    tokenizer: TextTokenizer,
    /// A plain word token decoded before each token, so that the decoder's word-boundary rules apply
    /// (WordPiece: a space before a word-initial piece, none before `##s`); `None` if none was found.
    anchor: Option<u32>,
}

impl TokenText {
    /// The tokenizer of a resolved model.
    pub fn load(model: &ResolvedModel) -> Result<TokenText> {
        Ok(TokenText::new(TextTokenizer::load(model)?))
    }

    /// Wraps an already loaded tokenizer.
    pub fn new(tokenizer: TextTokenizer) -> TokenText {
        let anchor = tokenizer
            .encode("the")
            .ok()
            .and_then(|ids| (ids.len() == 1).then(|| ids[0]));
        TokenText { tokenizer, anchor }
    }

    /// The text one token adds to running text, with the space before it when it starts a word
    /// (" value", "s" for WordPiece `##s`, " value" for byte-level `Ġvalue`); byte-level pieces of a
    /// multi-byte character show as U+FFFD; `<unk:ID>` for an id the vocabulary does not hold.
    pub fn token(&self, id: u32) -> String {
        if (id as usize) >= self.tokenizer.vocab_size() {
            return format!("<unk:{id}>");
        }
        if let Some(anchor) = self.anchor.filter(|_| !self.tokenizer.is_special(id)) {
            let base = self.tokenizer.decode(&[anchor]);
            let both = self.tokenizer.decode(&[anchor, id]);
            if let (Ok(base), Ok(both)) = (base, both) {
                if let Some(rest) = both.strip_prefix(base.as_str()).filter(|r| !r.is_empty()) {
                    return rest.to_string();
                }
            }
        }
        self.tokenizer
            .decode(&[id])
            .unwrap_or_else(|_| format!("<unk:{id}>"))
    }

    /// The underlying tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }
}

/// A direction in the residual stream read out as vocabulary logits.
pub struct LogitLens {
    norm_weight: Tensor,
    unembed_t: Tensor,
    d_model: usize,
}

impl LogitLens {
    /// The lens of a causal language model; `None` for encoders (BERT) that have no unembedding.
    pub fn load(model: &ResolvedModel) -> Result<Option<LogitLens>> {
        let m = Model::load(model, &Device::Cpu)?;
        Ok(LogitLens::from_model(&m))
    }

    /// The lens of an already loaded model.
    pub fn from_model(model: &Model) -> Option<LogitLens> {
        let (w, u) = model.head()?;
        Some(LogitLens {
            norm_weight: w.reshape((1, w.elem_count())).ok()?,
            unembed_t: u.t().ok()?.contiguous().ok()?,
            d_model: w.elem_count(),
        })
    }

    /// direction: [d_model] -> (direction * norm weight) W_U^T: [vocab]
    pub fn logits(&self, direction: &[f32]) -> Result<Vec<f32>> {
        if direction.len() != self.d_model {
            return Err(LmError::Invalid(format!(
                "direction has {} values, the model's residual width is {}",
                direction.len(),
                self.d_model
            )));
        }
        let x = Tensor::from_slice(direction, (1, self.d_model), &Device::Cpu)?;
        let y = (x * &self.norm_weight)?.matmul(&self.unembed_t)?;
        Ok(y.flatten_all()?.to_vec1()?)
    }

    /// Residual width.
    pub fn d_model(&self) -> usize {
        self.d_model
    }
}
