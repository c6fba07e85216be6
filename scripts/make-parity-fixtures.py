#!/usr/bin/env python3
"""Writes the parity fixtures that let `cargo test` check our forward passes against Hugging Face transformers.

Run once (not in CI): `python3 scripts/make-parity-fixtures.py`. It creates its own virtual environment
(.venv-parity, ignored by git) with torch + transformers from PyPI, then re-runs itself inside it.

Writes into tests/fixtures/parity/:
  <name>/config.json, <name>/model.safetensors   tiny random-weight models: gpt2, llama (GQA, untied, llama3
                                                 rope scaling), qwen2 (tied, qkv bias), bert
  <name>/acts.safetensors                        for each input k: `{k}.input_ids` [t] (int64), every hook
                                                 `{k}.blocks.{i}.{hook}` [t, width] (f32), and `{k}.logits`
                                                 [t, vocab] for the causal models
  minilm/acts.safetensors                        the real all-MiniLM-L6-v2 (from the HF cache that
                                                 scripts/fetch-models.sh fills): `{k}.input_ids` and
                                                 `{k}.hidden_states.{j}` [t, 384] for j = 0..6
  minilm/sentences.json                          the sentences
  <causal>/losses.json                           for gpt2, llama, qwen2 (from the saved models; `--losses`
                                                 writes only these): per input k, transformers' mean next-token
                                                 loss `clean`, and the same with blocks.0.hook_resid_post
                                                 replaced by zeros (`zero_resid_post_0`) and by half its
                                                 value (`half_resid_post_0`)
"""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-parity"
OUT = REPO / "tests" / "fixtures" / "parity"
PACKAGES = ["torch", "transformers", "safetensors", "numpy"]


def ensure_venv():
    """Re-executes this script inside .venv-parity, creating it first if needed."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    try:  # an interpreter that already has the packages (e.g. .cache/bench-venv) is used as it is
        import torch, transformers, safetensors, numpy  # noqa: F401, E401

        return
    except ImportError:
        pass
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    probe = subprocess.run([str(py), "-c", "import torch, transformers, safetensors, numpy"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", *PACKAGES])
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])


ensure_venv()

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

torch.manual_seed(0)
VOCAB = 61
LENGTHS = [7, 5, 9]
INPUTS = [torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(100 + k)) for k, n in enumerate(LENGTHS)]


def randomize(model, scale=0.2):
    """Larger-than-default random weights, so that a wrong op shows as a large difference."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name.lower() or "ln" in name.lower()) and "bias" not in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g))


def first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


def hidden_arg(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


class Recorder:
    """Registers forward hooks that record each hook point for one run."""

    def __init__(self):
        self.acts = {}
        self.handles = []

    def pre(self, module, name):
        def f(_m, args, kwargs):
            self.acts[name] = hidden_arg(args, kwargs)[0].detach().clone()

        self.handles.append(module.register_forward_pre_hook(f, with_kwargs=True))

    def post(self, module, name):
        def f(_m, _args, out):
            self.acts[name] = first(out)[0].detach().clone()

        self.handles.append(module.register_forward_hook(f))

    def post_input(self, module, name):
        """Records a module's input (e.g. down_proj's input = the MLP's post-activation)."""

        def f(_m, args, kwargs):
            self.acts[name] = hidden_arg(args, kwargs)[0].detach().clone()

        self.handles.append(module.register_forward_pre_hook(f, with_kwargs=True))


def record(model, blocks, wire, causal):
    tensors = {}
    for k, ids in enumerate(INPUTS):
        rec = Recorder()
        for i, block in enumerate(blocks):
            p = f"blocks.{i}."
            rec.pre(block, p + "hook_resid_pre")
            rec.post(block, p + "hook_resid_post")
            wire(rec, block, p)
        with torch.no_grad():
            out = model(input_ids=ids[None])
        for h in rec.handles:
            h.remove()
        tensors[f"{k}.input_ids"] = ids.to(torch.int64)
        for name, t in rec.acts.items():
            tensors[f"{k}.{name}"] = t.to(torch.float32).contiguous()
        if causal:
            tensors[f"{k}.logits"] = out.logits[0].to(torch.float32).contiguous()
    return tensors


def save(name, model, tensors):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ["generation_config.json"]:
        (d / extra).unlink(missing_ok=True)
    save_file(tensors, str(d / "acts.safetensors"))
    print(f"{name}: {len(tensors)} tensors")


def gpt2():
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new")
    model = GPT2LMHeadModel(cfg).eval()
    randomize(model)

    def wire(rec, block, p):
        rec.post(block.attn, p + "hook_attn_out")
        rec.post(block.ln_2, p + "ln2.hook_normalized")
        rec.post_input(block.mlp.c_proj, p + "mlp.hook_post")
        rec.post(block.mlp, p + "hook_mlp_out")

    save("gpt2", model, record(model, model.transformer.h, wire, True))


def llama_like(name, cls, cfg):
    model = cls(cfg).eval()
    randomize(model)

    def wire(rec, block, p):
        rec.post(block.self_attn, p + "hook_attn_out")
        rec.post(block.post_attention_layernorm, p + "ln2.hook_normalized")
        rec.post_input(block.mlp.down_proj, p + "mlp.hook_post")
        rec.post(block.mlp, p + "hook_mlp_out")

    save(name, model, record(model, model.model.layers, wire, True))


def bert():
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    model = BertModel(cfg, add_pooling_layer=False).eval()
    randomize(model)

    def wire(rec, block, p):
        rec.post(block.attention.output.dense, p + "hook_attn_out")
        rec.post(block.attention.output, p + "ln2.hook_normalized")  # LayerNorm(attn_out + resid): the MLP input
        rec.post(block.intermediate, p + "mlp.hook_post")
        rec.post(block.output.dense, p + "hook_mlp_out")

    save("bert", model, record(model, model.encoder.layer, wire, False))


def minilm():
    cache = Path(os.environ.get("SAE_HF_CACHE", REPO / ".cache" / "huggingface" / "hub"))
    folder = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    snap = folder / "snapshots" / (folder / "refs" / "main").read_text().strip()
    tok = AutoTokenizer.from_pretrained(snap)
    model = AutoModel.from_pretrained(snap, attn_implementation="eager").eval()
    sentences = ["The cat sat on the mat.", "Sparse autoencoders find features in activations!"]
    tensors = {}
    for k, s in enumerate(sentences):
        enc = tok(s, return_tensors="pt")
        with torch.no_grad():
            out = model(**enc, output_hidden_states=True)
        tensors[f"{k}.input_ids"] = enc["input_ids"][0].to(torch.int64)
        for j, h in enumerate(out.hidden_states):
            tensors[f"{k}.hidden_states.{j}"] = h[0].to(torch.float32).contiguous()
    d = OUT / "minilm"
    d.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(d / "acts.safetensors"))
    (d / "sentences.json").write_text(json.dumps(sentences, indent=1) + "\n")
    print(f"minilm: {len(tensors)} tensors")


def losses(name):
    """transformers' next-token losses on the saved fixture model, clean and with block 0's output spliced."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    d = OUT / name
    model = AutoModelForCausalLM.from_pretrained(str(d), torch_dtype=torch.float32).eval()
    blocks = model.transformer.h if name == "gpt2" else model.model.layers
    acts = load_file(str(d / "acts.safetensors"))
    out = {}
    for k in range(len(LENGTHS)):
        ids = acts[f"{k}.input_ids"][None]
        row = {}
        for label, edit in [("clean", None), ("zero_resid_post_0", 0.0), ("half_resid_post_0", 0.5)]:
            handle = None
            if edit is not None:
                def f(_m, _args, output, scale=edit):
                    if isinstance(output, tuple):
                        return (output[0] * scale, *output[1:])
                    return output * scale
                handle = blocks[0].register_forward_hook(f)
            with torch.no_grad():
                row[label] = float(model(ids, labels=ids).loss)
            if handle is not None:
                handle.remove()
        out[str(k)] = row
    (d / "losses.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{name}: losses {out}")


if __name__ == "__main__":
    if "--losses" in sys.argv:
        for name in ["gpt2", "llama", "qwen2"]:
            losses(name)
        sys.exit(0)
    gpt2()
    llama_like("llama", LlamaForCausalLM, LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500.0, max_position_embeddings=64,
        tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 16}))
    llama_like("qwen2", Qwen2ForCausalLM, Qwen2Config(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=64,
        tie_word_embeddings=True))
    bert()
    minilm()
    for name in ["gpt2", "llama", "qwen2"]:
        losses(name)
