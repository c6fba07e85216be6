//! What the report needs from a model: readable token text and the logit lens (a residual direction read
//! through the final norm's weight and the unembedding).

use candle_core::{Device, Tensor};

use crate::error::{HarvestError, Result};
use crate::hub::ResolvedModel;
use crate::models::Model;
use crate::tokenizer::TextTokenizer;

/// Readable text of single tokens.
pub struct TokenText {
    tokenizer: TextTokenizer,
}

impl TokenText {
    /// The tokenizer of a resolved model.
    pub fn load(model: &ResolvedModel) -> Result<TokenText> {
        Ok(TokenText {
            tokenizer: TextTokenizer::load(model)?,
        })
    }

    /// Wraps an already loaded tokenizer.
    pub fn new(tokenizer: TextTokenizer) -> TokenText {
        TokenText { tokenizer }
    }

    /// The text one token stands for (byte-level pieces of a multi-byte character show as U+FFFD);
    /// `<unk:ID>` for an id the vocabulary does not hold.
    pub fn token(&self, id: u32) -> String {
        if (id as usize) >= self.tokenizer.vocab_size() {
            return format!("<unk:{id}>");
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
            return Err(HarvestError::Invalid(format!(
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
