//! Harvest activations from pretrained transformers (GPT-2, Llama, BERT) at named hook points.
