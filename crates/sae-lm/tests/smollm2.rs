//! The real SmolLM2-135M-Instruct GGUF: tokenizer round trip and sensible next-token predictions.

mod common;

use candle_core::{Device, Tensor};
use sae_lm::{Capture, Model, TextTokenizer};

#[test]
fn gguf_tokenizer_round_trips_text() {
    let model = common::real_model(common::SMOLLM2);
    let tok = TextTokenizer::load(&model).unwrap();
    for text in [
        "Hello, world!",
        "  leading spaces and trailing  ",
        "Numbers 12345 and 3.14159; emoji 🦀 and accents: café, naïve.",
        "line one\nline two\n\n\ttabbed <|im_start|> special",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    // No leading-space artefact: "Hello" is one token without the Ġ prefix.
    let ids = tok.encode("Hello").unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(tok.decode(&ids).unwrap(), "Hello");
    // Control tokens are recognised whole and are special.
    let ids = tok.encode("<|im_start|>").unwrap();
    assert_eq!(ids.len(), 1);
    assert!(tok.is_special(ids[0]));
    assert!(
        tok.prefix().is_empty(),
        "SmolLM2's GGUF says add_bos_token = false"
    );
}

/// Greedy continuation of `prompt` by `n` tokens.
fn continue_text(model: &Model, tok: &TextTokenizer, prompt: &str, n: usize) -> String {
    let mut ids = tok.encode(prompt).unwrap();
    let start = ids.len();
    for _ in 0..n {
        let t = ids.len();
        let x = Tensor::from_slice(&ids, (1, t), &Device::Cpu).unwrap();
        let logits = model
            .forward(&x, &[t], &mut Capture::new(&[]))
            .unwrap()
            .unwrap();
        let last = logits.get(0).unwrap().get(t - 1).unwrap();
        let next = last.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        ids.push(next);
    }
    tok.decode(&ids[start..]).unwrap()
}

#[test]
fn next_tokens_are_sensible() {
    let resolved = common::real_model(common::SMOLLM2);
    let model = Model::load(&resolved, &Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&resolved).unwrap();
    let got = continue_text(&model, &tok, "1, 2, 3, 4,", 2);
    assert!(got.starts_with(" 5"), "counting continued with {got:?}");
    let got = continue_text(&model, &tok, "January, February, March, April,", 2);
    assert!(got.starts_with(" May"), "months continued with {got:?}");
    let got = continue_text(&model, &tok, "The capital of France is", 2);
    assert!(got.starts_with(" Paris"), "capital continued with {got:?}");
}
