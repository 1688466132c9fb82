"""Half-precision copies of the tiny models, written by PyTorch as Hugging Face checkpoints
ship them (many store F16 or BF16), for the parity tests of reading those dtypes:

- tiny-bert-f16: tiny-bert's weights cast to float16.
- tiny-xlmr-bf16-long: tiny-xlmr's weights cast to bfloat16, with the position table grown to
  514 rows (XLM-R's real size; new rows seeded N(0, 0.02²)) so texts past 128 tokens are tested.

    apt-get install python3-torch   # once, to regenerate; tests never need torch
    /usr/bin/python3 scripts/torch_dtype_models.py
    node dist/scripts/reference-inputs.js && /usr/bin/python3 scripts/torch_reference.py
"""
import json
import shutil
import struct

import numpy as np
import torch

from torch_reference import FIX, read_safetensors

DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16"}


def write_safetensors(path, tensors, dtype):
    """The safetensors layout, written here from its spec (no safetensors package)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).to(dtype).contiguous()
        raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": DTYPES[dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def derive(src, dst, dtype, edit=None):
    s, d = FIX / "models" / src, FIX / "models" / dst
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(s / f, d / f)
    w = read_safetensors(s / "model.safetensors")
    cfg = json.loads((d / "config.json").read_text())
    tok = json.loads((d / "tokenizer_config.json").read_text())
    if edit:
        edit(cfg, tok, w)
    cfg["torch_dtype"] = {torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype]
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (d / "tokenizer_config.json").write_text(json.dumps(tok, indent=2) + "\n")
    write_safetensors(d / "model.safetensors", w, dtype)


def longer_positions(cfg, tok, w):
    name = "embeddings.position_embeddings.weight"
    old = w[name]
    g = torch.Generator().manual_seed(514)
    extra = torch.randn(514 - old.shape[0], old.shape[1], generator=g, dtype=torch.float64) * 0.02
    w[name] = torch.cat([old, extra])
    cfg["max_position_embeddings"] = 514
    tok["model_max_length"] = 512


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    derive("tiny-bert", "tiny-bert-f16", torch.float16)
    derive("tiny-xlmr", "tiny-xlmr-bf16-long", torch.bfloat16, longer_positions)
