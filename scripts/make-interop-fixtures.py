#!/usr/bin/env python3
"""Writes the interoperability fixtures: small SAEs saved by SAELens and sparsify themselves, with
the libraries' own encode / decode / forward outputs, so that `cargo test` (tests/interop*.rs)
checks ours against them without Python; and SAEs that `sae train` wrote, loaded by SAELens, with
SAELens' outputs on them.

Run once (not in CI), after `cargo build --release` (the reverse direction runs target/release/sae):
    python3 scripts/make-interop-fixtures.py [--only import,saelens,sparsify,ours]
It creates its own virtual environment (.cache/interop-venv, ignored by git) with sae-lens and
eai-sparsify (EleutherAI's sparsify; PyPI's `sparsify` is another project) from PyPI, then re-runs
itself inside it. Torch runs on the CPU.

Writes into tests/fixtures/interop/:
  saelens/<kind>/            cfg.json + sae_weights.safetensors written by SAELens (save_model, or
                             save_inference_model for the training-only classes batchtopk and
                             matryoshka), activation_scaler.json for expected_average_only_in;
                             flat-pre6/ has a pre-6.0 flat cfg.json written here (SAELens 6 only
                             reads that layout) and read by SAELens' loader
  sparsify/<kind>/           cfg.json + sae.safetensors written by SparseCoder.save_to_disk
  sparsify/multi/<hook>/     two hookpoints in the trainer's layout, read back with load_many
  ours/<arch>/               cfg.json + sae_weights.safetensors from `sae train` (topk, batchtopk,
                             relu-l1, jumprelu, matryoshka-batchtopk saved as jumprelu), loaded with
                             SAELens' SAE.load_from_disk
  import/                    .npy files written by numpy (f16 2-D, f32 3-D, int64 token ids) and a
                             safetensors file by torch (bf16 acts + int32 tokens) for `sae import`,
                             with their values as f32 in values.safetensors
Each SAE folder also holds reference.safetensors: `x` [n, d_in] (the inputs), `acts` (the
library's encode), `decode` (its decode of those acts, right after encoding x), `out` (its
forward), and `y` (the target rows) for transcoders; and reference.json: library, version, the
class that loaded the folder, the library's FVU of `out` against x (or y) and L0, and for ours/ the
sae_format_version of the cfg.json SAELens read.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "interop-venv"
OUT = REPO / "tests" / "fixtures" / "interop"
PACKAGES = ["sae-lens==6.54.12", "eai-sparsify==1.3.3"]  # the versions the committed fixtures came from
D_IN, D_SAE, D_OUT, ROWS, K = 16, 32, 12, 64, 4


def ensure_venv():
    """Re-executes this script inside .cache/interop-venv, creating it first if needed."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    probe = subprocess.run([str(py), "-c", "import sae_lens, sparsify"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", *PACKAGES])
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])


ensure_venv()
os.environ["SPARSIFY_DISABLE_TRITON"] = "1"  # sparsify's eager decoder: Triton needs a GPU

import importlib.metadata  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from sae_lens import SAE  # noqa: E402
from sae_lens.evals import ExplainedVarianceCalculator  # noqa: E402
from sae_lens.saes import (  # noqa: E402
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    JumpReLUSkipTranscoder,
    JumpReLUSkipTranscoderConfig,
    JumpReLUTranscoder,
    JumpReLUTranscoderConfig,
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
    SkipTranscoder,
    SkipTranscoderConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
    Transcoder,
    TranscoderConfig,
)
from sae_lens.training.activation_scaler import ActivationScaler  # noqa: E402
from sparsify import SparseCoder, SparseCoderConfig  # noqa: E402

torch.manual_seed(0)
SAELENS_VERSION = importlib.metadata.version("sae-lens")
SPARSIFY_VERSION = importlib.metadata.version("eai-sparsify")
GEN = torch.Generator().manual_seed(1)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=GEN) * scale


def inputs(d=D_IN, offset=0.5):
    """Rows with a non-zero mean, so centring and b_dec matter."""
    return randn(ROWS, d) + offset * randn(d)


def randomize(module):
    """Every parameter random: weights ~ N(0, 1/d_in), decoder rows of unequal norms, biases ~ 0.1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == "threshold":
                p.copy_(0.1 + 0.4 * torch.rand(p.shape, generator=GEN))
            elif name in ("W_dec",):
                p.copy_(randn(*p.shape, scale=1.0 / p.shape[-1] ** 0.5) * (0.5 + 1.5 * torch.rand(p.shape[0], 1, generator=GEN)))
            elif name in ("W_enc", "encoder.weight", "W_skip"):
                p.copy_(randn(*p.shape, scale=1.0 / D_IN**0.5))
            else:
                p.copy_(randn(*p.shape, scale=0.1 if name != "r_mag" else 0.3))


def fvu_saelens(out, target):
    calc = ExplainedVarianceCalculator()
    calc.add_batch(out, target)
    return 1.0 - calc.compute()


def write_reference(folder, tensors, info):
    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(folder / "reference.safetensors"))
    (folder / "reference.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def saelens_reference(folder, x, y=None, fold_scaling=None, reshape_z=None):
    """Loads `folder` with SAELens (weights as float32) and records its outputs on x."""
    sae = SAE.load_from_disk(str(folder), dtype="float32")
    if fold_scaling is not None:
        sae.fold_activation_norm_scaling_factor(fold_scaling)
    sae.eval()
    with torch.no_grad():
        xin = x if reshape_z is None else x.reshape(ROWS, reshape_z, -1)
        acts = sae.encode(xin)
        dec = sae.decode(acts)
        out = sae(xin)
    flat = lambda t: t.reshape(ROWS, -1)  # noqa: E731
    target = x if y is None else y
    tensors = {"x": x, "acts": acts, "decode": flat(dec), "out": flat(out)}
    if y is not None:
        tensors["y"] = y
    info = {
        "library": "sae_lens",
        "version": SAELENS_VERSION,
        "class": type(sae).__name__,
        "architecture": sae.cfg.architecture(),
        "fvu": fvu_saelens(flat(out), target),
        "l0": float((acts != 0).float().sum(-1).mean()),
    }
    write_reference(folder, tensors, info)
    return info


def save_saelens(name, sae, x=None, y=None, training=False, **kw):
    folder = OUT / "saelens" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    randomize(sae)
    if training:
        sae.save_inference_model(str(folder))
    else:
        sae.save_model(str(folder))
    x = inputs() if x is None else x
    info = saelens_reference(folder, x, y, **kw)
    print(f"saelens/{name}: {info['class']} fvu {info['fvu']:.4f} l0 {info['l0']:.2f}")


def saelens_fixtures():
    base = dict(d_in=D_IN, d_sae=D_SAE)
    save_saelens("standard", StandardSAE(StandardSAEConfig(**base)))
    save_saelens("standard-no-bdec", StandardSAE(StandardSAEConfig(**base, apply_b_dec_to_input=False)))
    save_saelens("topk", TopKSAE(TopKSAEConfig(**base, k=K)))
    save_saelens("topk-rescale", TopKSAE(TopKSAEConfig(**base, k=K, rescale_acts_by_decoder_norm=True)))
    save_saelens("topk-trained", TopKTrainingSAE(TopKTrainingSAEConfig(**base, k=K)), training=True)
    save_saelens("jumprelu", JumpReLUSAE(JumpReLUSAEConfig(**base)))
    save_saelens("gated", GatedSAE(GatedSAEConfig(**base)))
    bt = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**base, k=K))
    bt.topk_threshold = torch.tensor(0.35, dtype=torch.double)
    save_saelens("batchtopk", bt, training=True)
    mt = MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(**base, k=K, matryoshka_widths=[8, 16, D_SAE]))
    mt.topk_threshold = torch.tensor(0.3, dtype=torch.double)
    save_saelens("matryoshka", mt, training=True)
    tc = dict(d_in=D_IN, d_sae=D_SAE, d_out=D_OUT, apply_b_dec_to_input=False)
    y = randn(ROWS, D_OUT)
    save_saelens("transcoder", Transcoder(TranscoderConfig(**tc)), y=y)
    save_saelens("skip-transcoder", SkipTranscoder(SkipTranscoderConfig(**tc)), y=y)
    save_saelens("jumprelu-transcoder", JumpReLUTranscoder(JumpReLUTranscoderConfig(**tc)), y=y)
    save_saelens("jumprelu-skip-transcoder", JumpReLUSkipTranscoder(JumpReLUSkipTranscoderConfig(**tc)), y=y)
    save_saelens("layer-norm", StandardSAE(StandardSAEConfig(**base, normalize_activations="layer_norm")))
    save_saelens("constant-norm-rescale", TopKSAE(TopKSAEConfig(**base, k=K, normalize_activations="constant_norm_rescale")))
    hook_z = StandardSAEConfig(**base, reshape_activations="hook_z")
    hook_z.metadata.hook_name = "blocks.0.attn.hook_z"
    save_saelens("hook-z", StandardSAE(hook_z), reshape_z=4)
    expected_average(base)
    low_precision("float16", StandardSAE(StandardSAEConfig(**base)))
    low_precision("bfloat16", JumpReLUSAE(JumpReLUSAEConfig(**base)))
    flat_pre6()


def expected_average(base):
    """expected_average_only_in with the trainer's activation_scaler.json beside the weights; the
    reference folds the factor with SAELens' own fold_activation_norm_scaling_factor."""
    folder = OUT / "saelens" / "expected-average"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sae = StandardSAE(StandardSAEConfig(**base, normalize_activations="expected_average_only_in"))
    randomize(sae)
    sae.save_model(str(folder))
    scaling = 2.5
    ActivationScaler(scaling_factor=scaling).save(str(folder / "activation_scaler.json"))
    info = saelens_reference(folder, inputs(), fold_scaling=scaling)
    print(f"saelens/expected-average: fvu {info['fvu']:.4f}")


def low_precision(dtype, sae):
    folder = OUT / "saelens" / dtype
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    randomize(sae)
    sae.to(getattr(torch, dtype)).save_model(str(folder))
    info = saelens_reference(folder, inputs())
    print(f"saelens/{dtype}: {info['class']} fvu {info['fvu']:.4f}")


def flat_pre6():
    """A pre-6.0 flat cfg.json (as SAELens 5 wrote it: activation_fn_str, hook_point, k in
    activation_fn_kwargs) with float32 weights, read by SAELens 6's own pre-6.0 handling."""
    folder = OUT / "saelens" / "flat-pre6"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K))
    randomize(sae)
    save_file({k: v.detach().contiguous() for k, v in sae.state_dict().items()}, str(folder / "sae_weights.safetensors"))
    cfg = {
        "architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
        "model_name": "gpt2", "hook_point": "blocks.2.hook_resid_pre", "hook_point_layer": 2,
        "hook_point_head_index": None, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K},
        "apply_b_dec_to_input": True, "finetuning_scaling_factor": False, "context_size": 128,
        "prepend_bos": True, "dataset_path": "Skylion007/openwebtext", "normalize_activations": "none",
        "sae_lens_training_version": "5.9.1",
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    info = saelens_reference(folder, inputs())
    print(f"saelens/flat-pre6: {info['class']} fvu {info['fvu']:.4f}")


def sparsify_reference(folder, sae, x, y=None):
    sae.eval()
    with torch.no_grad():
        enc = sae.encode(x)
        acts = torch.zeros(ROWS, sae.num_latents).scatter(-1, enc.top_indices, enc.top_acts)
        dec = sae.decode(enc.top_acts, enc.top_indices)
        fwd = sae(x, y)
    tensors = {"x": x, "acts": acts, "decode": dec, "out": fwd.sae_out}
    if y is not None:
        tensors["y"] = y
    info = {
        "library": "sparsify",
        "version": SPARSIFY_VERSION,
        "class": type(sae).__name__,
        "fvu": float(fwd.fvu),
        "l0": float((acts != 0).float().sum(-1).mean()),
    }
    write_reference(folder, tensors, info)
    return info


def save_sparsify(folder, cfg, y=None):
    shutil.rmtree(folder, ignore_errors=True)
    sae = SparseCoder(D_IN, cfg)
    randomize(sae)
    sae.save_to_disk(folder)
    return SparseCoder.load_from_disk(folder), y


def sparsify_fixtures():
    root = OUT / "sparsify"
    y = randn(ROWS, D_IN)
    kinds = {
        "topk": (SparseCoderConfig(num_latents=D_SAE, k=K), None),
        "transcoder": (SparseCoderConfig(num_latents=D_SAE, k=K, transcode=True), y),
        "skip-transcoder": (SparseCoderConfig(num_latents=D_SAE, k=K, transcode=True, skip_connection=True), y),
        "skip": (SparseCoderConfig(expansion_factor=2, k=K, skip_connection=True), None),
        "groupmax": (SparseCoderConfig(num_latents=D_SAE, k=K, activation="groupmax"), None),
    }
    for name, (cfg, target) in kinds.items():
        sae, target = save_sparsify(root / name, cfg, target)
        info = sparsify_reference(root / name, sae, inputs(), target)
        print(f"sparsify/{name}: fvu {info['fvu']:.4f}")
    multi = root / "multi"
    shutil.rmtree(multi, ignore_errors=True)
    for hook in ["layers.0", "layers.1.mlp"]:
        save_sparsify(multi / hook, SparseCoderConfig(num_latents=D_SAE, k=K))
    for hook, sae in SparseCoder.load_many(str(multi), local=True).items():
        info = sparsify_reference(multi / hook, sae, inputs())
        print(f"sparsify/multi/{hook}: fvu {info['fvu']:.4f}")


def ours_fixtures():
    """SAEs `sae train` writes, read by SAELens."""
    binary = REPO / "target" / "release" / "sae"
    if not binary.exists():
        sys.exit(f"{binary} not found: run `cargo build --release` first")
    root = OUT / "ours"
    tmp = Path(tempfile.gettempdir()) / "sae-interop-fixtures"  # a fixed path: cfg.json records it
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        store = Path(tmp) / "store"
        subprocess.check_call([str(binary), "synth", "--features", "48", "--dim", str(D_IN), "--firing-prob", "0.05",
                               "--samples", "20000", "--seed", "0", "--out", str(store)], stdout=subprocess.DEVNULL)
        for arch in ["topk", "batchtopk", "relu-l1", "jumprelu", "matryoshka-batchtopk"]:
            out = Path(tmp) / arch
            k = [] if arch == "relu-l1" else ["--k", str(K)]
            subprocess.check_call([str(binary), "train", "--store", str(store), "--out", str(out), "--arch", arch, *k,
                                   "--d-sae", str(D_SAE), "--steps", "200", "--batch", "256", "--checkpoint-every", "0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            folder = root / arch
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for f in ["cfg.json", "sae_weights.safetensors"]:
                shutil.copy(out / f, folder / f)
            cfg = json.loads((folder / "cfg.json").read_text())
            rows = torch_load(store / "shard-00000.safetensors", "acts")[-ROWS:].float()
            info = saelens_reference(folder, rows)
            info["sae_format_version"] = cfg.get("sae_format_version")
            info["written_by"] = "sae train --arch " + arch
            # A harvest's SAE names its hook: SAELens keeps our metadata (a copy with one set).
            with tempfile.TemporaryDirectory() as t:
                copy = Path(t) / arch
                shutil.copytree(folder, copy)
                cfg2 = json.loads(json.dumps(cfg))
                cfg2["metadata"]["hook_name"] = "blocks.3.hook_resid_post"
                (copy / "cfg.json").write_text(json.dumps(cfg2))
                info["hook_read"] = SAE.load_from_disk(str(copy), dtype="float32").cfg.metadata.hook_name
            write_reference(folder, torch_load(folder / "reference.safetensors"), info)
            print(f"ours/{arch}: SAELens {info['class']} fvu {info['fvu']:.4f} l0 {info['l0']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def torch_load(path, key=None):
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    return tensors if key is None else tensors[key]


def import_fixtures():
    """Arrays as numpy and safetensors write them, for `sae import`: values.safetensors holds the
    same rows as f32 (`acts`, `acts3`, `bf16`) and the token ids (`ids`, as f32) for the tests to compare."""
    import numpy as np

    folder = OUT / "import"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    acts = rng.standard_normal((40, 16)).astype(np.float16)
    np.save(folder / "acts-f16.npy", acts)
    acts3 = rng.standard_normal((3, 5, 16)).astype(np.float32)
    np.save(folder / "acts3-f32.npy", acts3)
    ids = rng.integers(0, 50000, size=(40,)).astype(np.int64)
    np.save(folder / "ids-i64.npy", ids)
    both = torch.from_numpy(rng.standard_normal((24, 16)).astype(np.float32))
    save_file({"acts": both.to(torch.bfloat16), "tokens": torch.arange(24, dtype=torch.int32) * 7}, str(folder / "acts-bf16.safetensors"))
    save_file({
        "acts": torch.from_numpy(acts.astype(np.float32)),
        "acts3": torch.from_numpy(acts3.reshape(15, 16)),
        "ids": torch.from_numpy(ids.astype(np.float32)),  # exact: every id is below 2^24
        "bf16": both.to(torch.bfloat16).to(torch.float32),
    }, str(folder / "values.safetensors"))
    print(f"import/: {sorted(p.name for p in folder.iterdir())}")


if __name__ == "__main__":
    # `--only ours` (etc.) remakes one group and leaves the others' files as they are.
    groups = {"import": import_fixtures, "saelens": saelens_fixtures, "sparsify": sparsify_fixtures,
              "ours": ours_fixtures}
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else list(groups)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in only:
        groups[name]()
