//! Token text for reports: a `tokenizer.json` read with the `tokenizers` crate (the CLI may
//! supply the model's own token text instead), and how the report collects the ids it mentions.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::ReportError;

/// Readable text of single tokens from a `tokenizer.json`.
pub struct TokenizerText {
    tokenizer: Tokenizer,
}

impl TokenizerText {
    /// Loads `tokenizer.json`.
    pub fn load(path: &Path) -> Result<TokenizerText, ReportError> {
        if !path.is_file() {
            return Err(ReportError::MissingTokenizer(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let tokenizer = Tokenizer::from_file(path).map_err(|e| ReportError::BadTokenizer {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(TokenizerText { tokenizer })
    }

    /// Text of one token: decoded when the decoder can, else the raw vocabulary entry.
    pub fn token(&self, id: u32) -> String {
        match self.tokenizer.decode(&[id], false) {
            Ok(s) if !s.is_empty() => s,
            _ => self
                .tokenizer
                .id_to_token(id)
                .unwrap_or_else(|| format!("<id {id}>")),
        }
    }
}
