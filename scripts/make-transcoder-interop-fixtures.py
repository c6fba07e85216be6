#!/usr/bin/env python3
"""Writes the reverse interop fixtures of transcoders: a transcoder and a skip transcoder that
`sae train --target-store` wrote, loaded by SAELens (SAE.load_from_disk), with SAELens' outputs on
them, so that `cargo test --test interop_transcoder` checks ours against SAELens without Python.

Run once (not in CI), after `cargo build --release` and after scripts/make-interop-fixtures.py has
created .cache/interop-venv (sae-lens and eai-sparsify at the versions of the committed fixtures):
    python3 scripts/make-transcoder-interop-fixtures.py
It re-runs itself inside that environment. (A separate script so that it can be folded into
make-interop-fixtures.py's `ours` group later without touching that file's other groups.)

Writes tests/fixtures/interop/ours/{transcoder,skip-transcoder}/: cfg.json + sae_weights.safetensors
as `sae train` wrote them, reference.safetensors (`x` [n, d_in] the inputs, `y` [n, d_out] the
target rows, `acts` SAELens' encode, `decode` its decode of those acts, `out` its forward) and
reference.json (library, version, class, architecture, SAELens' FVU of `out` against y, L0,
sae_format_version, written_by).
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

py = VENV / "bin" / "python"
if Path(sys.prefix).resolve() != VENV.resolve():
    if not py.exists():
        sys.exit(f"{VENV} not found: run scripts/make-interop-fixtures.py first (it creates it)")
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])

import importlib.metadata  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from sae_lens import SAE  # noqa: E402
from sae_lens.evals import ExplainedVarianceCalculator  # noqa: E402

SAELENS_VERSION = importlib.metadata.version("sae-lens")


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
        for name, extra in [("transcoder", []), ("skip-transcoder", ["--skip"])]:
            out = tmp / name
            args = ["train", "--store", str(stores["x"]), "--target-store", str(stores["y"]), "--out", str(out),
                    "--arch", "batchtopk", "--k", str(K), "--d-sae", str(D_SAE), "--steps", "200", "--batch", "256",
                    "--checkpoint-every", "0", *extra]
            subprocess.check_call([str(binary), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            folder = OUT / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for f in ["cfg.json", "sae_weights.safetensors"]:
                shutil.copy(out / f, folder / f)
            info = reference(folder, x, y, "sae train --arch batchtopk --target-store " + " ".join(extra))
            print(f"ours/{name}: SAELens {info['class']} fvu {info['fvu']:.4f} l0 {info['l0']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
