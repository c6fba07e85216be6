//! `TokenText`: each token's text as it reads inside running text, for WordPiece and byte-level BPE.

mod common;

use sae_lm::{TextTokenizer, TokenText};

fn pieces(id: &str, text: &str) -> Vec<String> {
    let model = common::real_model(id);
    let tok = TextTokenizer::load(&model).unwrap();
    let ids = tok.encode(text).unwrap();
    let text = TokenText::new(tok);
    ids.iter().map(|&i| text.token(i)).collect()
}

#[test]
fn wordpiece_tokens_carry_their_word_boundaries() {
    // MiniLM lower-cases; "designates" splits into "designate" + "##s".
    let p = pieces(common::MINILM, "the table designates the value");
    assert_eq!(p.concat(), " the table designates the value");
    assert!(p.contains(&"s".to_string()), "{p:?}");
    assert!(p.contains(&" value".to_string()), "{p:?}");
}

#[test]
fn byte_level_tokens_concatenate_to_the_text() {
    let text = "The capital of France is Paris, isn't it?";
    let p = pieces(common::SMOLLM2, text);
    assert_eq!(p.concat(), text);
    assert!(p.contains(&" Paris".to_string()), "{p:?}");
}
