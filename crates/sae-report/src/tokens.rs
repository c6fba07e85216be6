//! Token text for reports: a token as it reads inside running text (WordPiece "##s" joins its
//! word, "user" starts a new one), from a `tokenizer.json` read with the `tokenizers` crate or
//! from any decoder the caller has (the CLI uses the model's own).

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

    /// Text of one token as it reads after another token (see [`surface_form`]); the raw
    /// vocabulary entry when the decoder cannot say.
    pub fn token(&self, id: u32) -> String {
        let decode = |ids: &[u32]| self.tokenizer.decode(ids, false).ok();
        surface_form(&decode, id).unwrap_or_else(|| {
            self.tokenizer
                .id_to_token(id)
                .unwrap_or_else(|| format!("<id {id}>"))
        })
    }
}

/// How token `id` reads inside running text: decode `[id, id]` and drop the text of the first
/// `[id]`. This keeps the separator the decoder puts before a token that starts a word (WordPiece,
/// SentencePiece, word-level) and drops it before a continuation ("##s"); byte-level BPE tokens
/// come out as they are. `None` when the decoder fails or the result is not a clean split.
pub fn surface_form(decode: &dyn Fn(&[u32]) -> Option<String>, id: u32) -> Option<String> {
    let one = decode(&[id])?;
    let two = decode(&[id, id])?;
    let rest = two.strip_prefix(one.as_str())?;
    (!rest.is_empty()).then(|| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WordPiece-like decoder: "##" pieces join the previous word, other tokens get a space.
    fn wordpiece(vocab: &[&str], ids: &[u32]) -> Option<String> {
        let mut out = String::new();
        for (i, &id) in ids.iter().enumerate() {
            let t = vocab.get(id as usize)?;
            match (i, t.strip_prefix("##")) {
                (0, _) => out.push_str(t),
                (_, Some(rest)) => out.push_str(rest),
                (_, None) => {
                    out.push(' ');
                    out.push_str(t);
                }
            }
        }
        Some(out)
    }

    #[test]
    fn surface_forms() {
        let vocab = ["user", "##s", ""];
        let dec = |ids: &[u32]| wordpiece(&vocab, ids);
        assert_eq!(surface_form(&dec, 0).as_deref(), Some(" user"));
        assert_eq!(surface_form(&dec, 1).as_deref(), Some("s"));
        // An empty decoding gives no surface form (the caller falls back to the raw entry).
        let empty = |_: &[u32]| Some(String::new());
        assert_eq!(surface_form(&empty, 2), None);
        // Byte-level BPE: concatenation.
        let bpe = |ids: &[u32]| Some(ids.iter().map(|_| " the").collect::<String>());
        assert_eq!(surface_form(&bpe, 5).as_deref(), Some(" the"));
        assert_eq!(surface_form(&|_: &[u32]| None, 0), None);
    }
}
