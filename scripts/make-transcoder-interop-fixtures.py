#!/usr/bin/env python3
"""Writes the reverse interop fixtures of transcoders: transcoders that `sae train --target-store`
wrote, loaded by the library whose layout they are in, with that library's outputs on them, so that
`cargo test --test interop_transcoder` checks ours against it without Python:
  - BatchTopK and Matryoshka BatchTopK (skip) transcoders, saved as SAELens' jumprelu_transcoder /
    jumprelu_skip_transcoder (Matryoshka's prefix widths in metadata.matryoshka_widths), loaded by
    SAELens (SAE.load_from_disk);
  - TopK (skip) transcoders, saved in sparsify's layout (SAELens 6.54 has no TopK transcoder class
    and its `topk` SAE has no d_out), loaded by sparsify (SparseCoder.load_from_disk).

Run once (not in CI), after `cargo build --release` and after scripts/make-interop-fixtures.py has
created .cache/interop-venv (sae-lens and eai-sparsify at the versions of the committed fixtures):
    python3 scripts/make-transcoder-interop-fixtures.py
It re-runs itself inside that environment. (A separate script so that it can be folded into
make-interop-fixtures.py's `ours` group later without touching that file's other groups.)

Writes tests/fixtures/interop/ours/<name>/ for transcoder, skip-transcoder, matryoshka-transcoder,
matryoshka-skip-transcoder (cfg.json + sae_weights.safetensors) and topk-transcoder,
topk-skip-transcoder (cfg.json + sae.safetensors), as `sae train` wrote them, with
reference.safetensors (`x` [n, d_in] the inputs, `y` [n, d_out] the target rows, `acts` the
library's encode, `decode` its decode of those acts, `out` its forward) and reference.json
(library, version, class, the library's FVU of `out` against y, L0, sae_format_version, written_by;
for SAELens the architecture and the output hook it read; for Matryoshka the prefix widths it read).

The SAELens pairs are two row-aligned `sae synth` stores (same codes, widths 16 and 12). sparsify's
transcoders predict a hook of the input's width, so the TopK pair is made here: x the synthetic
rows of width 16, y = relu(x A) B with fixed random A, B (not symmetric, so that W_skip's
orientation shows), both brought in with `sae import` (the same shard layout and held-out rows) as
the hooks of an MLP's input and output, which the folder's metadata records.
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
OUT = REPO / "tests" / "fixtures" / "interop" / "ours"
D_IN, D_OUT, D_SAE, ROWS, K = 16, 12, 32, 64, 4
HOOK_IN, HOOK_OUT = "blocks.3.ln2.hook_normalized", "blocks.3.hook_mlp_out"  # the imported pair's hooks

py = VENV / "bin" / "python"
if Path(sys.prefix).resolve() != VENV.resolve():
    if not py.exists():
        sys.exit(f"{VENV} not found: run scripts/make-interop-fixtures.py first (it creates it)")
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])

os.environ["SPARSIFY_DISABLE_TRITON"] = "1"  # sparsify's eager decoder: Triton needs a GPU

import importlib.metadata  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from sae_lens import SAE  # noqa: E402
from sae_lens.evals import ExplainedVarianceCalculator  # noqa: E402
from sparsify import SparseCoder  # noqa: E402

SAELENS_VERSION = importlib.metadata.version("sae-lens")
SPARSIFY_VERSION = importlib.metadata.version("eai-sparsify")


def reference(folder, x, y, written_by):
    sae = SAE.load_from_disk(str(folder), dtype="float32")
    sae.eval()
    with torch.no_grad():
        acts = sae.encode(x)
        dec = sae.decode(acts)
        out = sae(x)
    calc = ExplainedVarianceCalculator()
    calc.add_batch(out, y)
    cfg = json.loads((folder / "cfg.json").read_text())
    info = {
        "library": "sae_lens",
        "version": SAELENS_VERSION,
        "class": type(sae).__name__,
        "architecture": sae.cfg.architecture(),
        "fvu": 1.0 - calc.compute(),
        "l0": float((acts != 0).float().sum(-1).mean()),
        "sae_format_version": cfg.get("sae_format_version"),
        "written_by": written_by,
    }
    if sae.cfg.metadata.matryoshka_widths is not None:
        info["matryoshka_widths"] = list(sae.cfg.metadata.matryoshka_widths)
    # The synthetic stores name no hooks: check on a copy that SAELens reads the output hook where
    # our writer puts it for a harvest's stores (metadata.hook_name_out). SAELens 6.54 keeps our
    # metadata only because it carries a sae_lens_version (without one it takes the cfg.json for the
    # pre-6.0 layout and drops it).
    with tempfile.TemporaryDirectory() as t:
        copy = Path(t) / "tc"
        shutil.copytree(folder, copy)
        cfg2 = json.loads(json.dumps(cfg))
        cfg2["metadata"]["hook_name_out"] = "blocks.3.hook_mlp_out"
        (copy / "cfg.json").write_text(json.dumps(cfg2))
        info["hook_out_read"] = SAE.load_from_disk(str(copy), dtype="float32").cfg.metadata.hook_name_out
    tensors = {"x": x, "y": y, "acts": acts, "decode": dec, "out": out}
    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, str(folder / "reference.safetensors"))
    (folder / "reference.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def sparsify_reference(folder, x, y, written_by):
    sae = SparseCoder.load_from_disk(folder)
    sae.eval()
    with torch.no_grad():
        enc = sae.encode(x)
        acts = torch.zeros(x.shape[0], sae.num_latents).scatter(-1, enc.top_indices, enc.top_acts)
        dec = sae.decode(enc.top_acts, enc.top_indices)
        fwd = sae(x, y)
    cfg = json.loads((folder / "cfg.json").read_text())
    info = {
        "library": "sparsify",
        "version": SPARSIFY_VERSION,
        "class": type(sae).__name__,
        "transcode": sae.cfg.transcode,
        "skip_connection": sae.W_skip is not None,
        "fvu": float(fwd.fvu),
        "l0": float((acts != 0).float().sum(-1).mean()),
        "sae_format_version": cfg.get("sae_format_version"),
        "written_by": written_by,
    }
    tensors = {"x": x, "y": y, "acts": acts, "decode": dec, "out": fwd.sae_out}
    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, str(folder / "reference.safetensors"))
    (folder / "reference.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def train(binary, x_store, y_store, out, arch, extra):
    args = ["train", "--store", str(x_store), "--target-store", str(y_store), "--out", str(out), "--arch", arch,
            "--k", str(K), "--d-sae", str(D_SAE), "--steps", "200", "--batch", "256", "--checkpoint-every", "0",
            *extra]
    subprocess.check_call([str(binary), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def keep(out, name, files):
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in files:
        shutil.copy(out / f, folder / f)
    return folder


def same_width_pair(binary, tmp, x_synth):
    """x (the synthetic rows of width D_IN) and y = relu(x A) B of the same width, imported alike."""
    x = load_file(str(x_synth / "shard-00000.safetensors"))["acts"].float()
    g = torch.Generator().manual_seed(3)
    a = torch.randn(D_IN, 2 * D_IN, generator=g) / D_IN ** 0.5
    b = torch.randn(2 * D_IN, D_IN, generator=g) / D_IN ** 0.5
    y = torch.relu(x @ a) @ b
    stores = {}
    for name, rows, hook in [("x", x, HOOK_IN), ("y", y, HOOK_OUT)]:
        src = tmp / f"{name}-same.safetensors"
        save_file({"acts": rows.contiguous()}, str(src))
        stores[name] = tmp / f"{name}-same"
        subprocess.check_call([str(binary), "import", "--input", str(src), "--key", "acts", "--eval-rows", "1000",
                               "--hook", hook, "--out", str(stores[name])], stdout=subprocess.DEVNULL)
    return stores


def main():
    binary = REPO / "target" / "release" / "sae"
    if not binary.exists():
        sys.exit(f"{binary} not found: run `cargo build --release` first")
    tmp = Path(tempfile.gettempdir()) / "sae-interop-transcoder-fixtures"  # fixed: cfg.json records it
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        # Two row-aligned synthetic stores (same codes, widths 16 and 12): x -> y is a sparse map.
        stores = {}
        for name, d in [("x", D_IN), ("y", D_OUT)]:
            stores[name] = tmp / name
            subprocess.check_call([str(binary), "synth", "--features", "48", "--dim", str(d), "--firing-prob", "0.05",
                                   "--samples", "20000", "--seed", "0", "--out", str(stores[name])],
                                  stdout=subprocess.DEVNULL)
        x = load_file(str(stores["x"] / "shard-00000.safetensors"))["acts"][-ROWS:].float()
        y = load_file(str(stores["y"] / "shard-00000.safetensors"))["acts"][-ROWS:].float()
        runs = [("transcoder", "batchtopk", []), ("skip-transcoder", "batchtopk", ["--skip"]),
                ("matryoshka-transcoder", "matryoshka-batchtopk", []),
                ("matryoshka-skip-transcoder", "matryoshka-batchtopk", ["--skip"])]
        for name, arch, extra in runs:
            out = tmp / name
            train(binary, stores["x"], stores["y"], out, arch, extra)
            folder = keep(out, name, ["cfg.json", "sae_weights.safetensors"])
            info = reference(folder, x, y, f"sae train --arch {arch} --target-store " + " ".join(extra))
            print(f"ours/{name}: SAELens {info['class']} fvu {info['fvu']:.4f} l0 {info['l0']:.2f}")
        same = same_width_pair(binary, tmp, stores["x"])
        xs = load_file(str(same["x"] / "shard-00001.safetensors"))["acts"][-ROWS:].float()
        ys = load_file(str(same["y"] / "shard-00001.safetensors"))["acts"][-ROWS:].float()
        for name, extra in [("topk-transcoder", []), ("topk-skip-transcoder", ["--skip"])]:
            out = tmp / name
            train(binary, same["x"], same["y"], out, "topk", extra)
            folder = keep(out, name, ["cfg.json", "sae.safetensors"])
            info = sparsify_reference(folder, xs, ys, "sae train --arch topk --target-store " + " ".join(extra))
            print(f"ours/{name}: sparsify {info['class']} fvu {info['fvu']:.4f} l0 {info['l0']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
