"""Reference embeddings for the tiny models, computed by a plain PyTorch transcription of
Hugging Face's BertModel / XLMRobertaModel (no transformers package needed).

    apt-get install python3-torch   # once, to regenerate; tests never need torch
    node dist/scripts/reference-inputs.js && /usr/bin/python3 scripts/torch_reference.py

Reads test/fixtures/reference/inputs.json (token ids from our tokenizer) and writes
test/fixtures/reference/<model>.json with hidden states and pooled embeddings.
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "test" / "fixtures"


def read_safetensors(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        data = raw[8 + n + b : 8 + n + end]
        if e["dtype"] == "F32":
            arr = np.frombuffer(data, dtype="<f4")
        elif e["dtype"] == "F16":
            arr = np.frombuffer(data, dtype="<f2").astype(np.float64)
        elif e["dtype"] == "BF16":  # the top 16 bits of a float32
            arr = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {e['dtype']}")
        arr = arr.reshape(e["shape"])
        out[name] = torch.tensor(arr.copy(), dtype=torch.float64)
    return out


def forward_use(cfg, w, ids, mask):
    """USE-Lite token states, following the tfjs graph (see src/models/use-lite.ts)."""
    b, s = ids.shape
    e, h, heads = cfg["embedding_size"], cfg["hidden_size"], cfg["num_attention_heads"]
    pos = torch.arange(s, dtype=torch.float64)[:, None] * w["timing.inv_timescales"]
    x = 2 * w["embeddings.weight"][ids] + torch.cat([torch.sin(pos), torch.cos(pos)], dim=1)
    bias = (1.0 - mask[:, None, None, :].double()) * -1e9
    for l in range(cfg["num_hidden_layers"]):
        p = f"layer_{l}"
        d = e if l == 0 else h
        ln = lambda t, n, size: F.layer_norm(t, (size,), w[f"{p}.{n}.weight"], w[f"{p}.{n}.bias"], cfg["layer_norm_eps"])
        lin = lambda t, n: t @ w[f"{p}.{n}.weight"] + w[f"{p}.{n}.bias"]
        residual = lin(x, "residual") if l == 0 else x
        q, k, v = lin(ln(x, "attention_ln", d), "qkv").split(d, dim=-1)
        split = lambda t: t.view(b, s, heads, d // heads).transpose(1, 2)
        scores = split(q) / math.sqrt(d // heads) @ split(k).transpose(-1, -2) + bias
        ctx = (torch.softmax(scores, dim=-1) @ split(v)).transpose(1, 2).reshape(b, s, d)
        x = residual + lin(ctx, "attention_out")
        x = x + lin(torch.relu(lin(ln(x, "ffn_ln", h), "ffn_in")), "ffn_out")
    return x


def embed(cfg, w, ids, mask, mode):
    """Pooled sentence vector (before normalisation); USE-Lite adds its tanh head."""
    if cfg["model_type"] == "use-lite":
        pooled = pool(forward_use(cfg, w, ids, mask), mask, mode)
        return torch.tanh(pooled @ w["head.weight"] + w["head.bias"])
    return pool(forward(cfg, w, ids, mask), mask, mode)


def forward(cfg, w, ids, mask):
    """Hidden states, float64, following modeling_bert.py / modeling_xlm_roberta.py."""
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = h // heads
    eps = cfg["layer_norm_eps"]
    b, s = ids.shape
    if cfg["model_type"] == "bert":
        pos = torch.arange(s).unsqueeze(0).expand(b, s)
    else:
        pad = cfg["pad_token_id"]
        m = (ids != pad).long()
        pos = torch.cumsum(m, dim=1) * m + pad
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
    x = x + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    ln = lambda t, p: F.layer_norm(t, (h,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda t, p: t @ w[p + ".weight"].T + w[p + ".bias"]
    x = ln(x, "embeddings.LayerNorm")
    ext = (1.0 - mask[:, None, None, :].double()) * torch.finfo(torch.float64).min
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        split = lambda t: t.view(b, s, heads, d).transpose(1, 2)
        q = split(lin(x, p + ".attention.self.query"))
        k = split(lin(x, p + ".attention.self.key"))
        v = split(lin(x, p + ".attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + ext
        ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, s, h)
        x = ln(x + lin(ctx, p + ".attention.output.dense"), p + ".attention.output.LayerNorm")
        ff = lin(F.gelu(lin(x, p + ".intermediate.dense")), p + ".output.dense")
        x = ln(x + ff, p + ".output.LayerNorm")
    return x


def pool(hidden, mask, mode):
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).double()
    if mode == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    last = mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0]), last]


def pad(ids_list, pad_id):
    s = max(len(x) for x in ids_list)
    ids = torch.full((len(ids_list), s), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids_list), s), dtype=torch.long)
    for r, row in enumerate(ids_list):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return ids, mask


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = tensors[name].detach().to(torch.float32).contiguous().numpy().astype("<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def gradients(inputs, case):
    """InfoNCE loss (in-batch + hard negatives, group size 2) and d loss / d every weight."""
    mdir = FIX / "models" / case["model"]
    cfg = json.loads((mdir / "config.json").read_text())
    w = read_safetensors(mdir / "model.safetensors")
    for name, t in w.items():
        t.requires_grad_(name != "timing.inv_timescales")  # a fixed signal, not a weight
    entry = inputs["models"][case["model"]]
    qi, qm = pad(entry["queryIds"], cfg["pad_token_id"])
    pi, pm = pad(entry["passageIds"], cfg["pad_token_id"])
    q = embed(cfg, w, qi, qm, case["pooling"])
    p = embed(cfg, w, pi, pm, case["pooling"])
    group = p.shape[0] // q.shape[0]
    labels = torch.arange(q.shape[0]) * group

    def ce(qq, pp):
        qq, pp = F.normalize(qq, dim=-1), F.normalize(pp, dim=-1)
        return F.cross_entropy(qq @ pp.T / case["temperature"], labels)

    if case["matryoshkaDims"]:
        loss = sum(wt * ce(q[:, :d], p[:, :d]) for d, wt in zip(case["matryoshkaDims"], case["matryoshkaWeights"]))
    else:
        loss = ce(q, p)
    loss.backward()
    grads = {k: t.grad for k, t in w.items() if t.grad is not None}
    write_safetensors(FIX / "reference" / f"grad-{case['name']}.safetensors", grads)
    return float(loss)


def main():
    torch.set_default_dtype(torch.float64)
    inputs = json.loads((FIX / "reference" / "inputs.json").read_text())
    # Qwen models are referenced by scripts/torch_qwen_reference.py (Hugging Face transformers).
    encoders = lambda m: not m.startswith("tiny-qwen")
    losses_path = FIX / "reference" / "losses.json"
    losses = json.loads(losses_path.read_text()) if losses_path.exists() else {}
    losses.update({case["name"]: gradients(inputs, case) for case in inputs["gradientCases"] if encoders(case["model"])})
    losses_path.write_text(json.dumps(losses, indent=2))
    print("losses", losses, file=sys.stderr)
    for model, entry in inputs["models"].items():
        if not encoders(model):
            continue
        mdir = FIX / "models" / model
        cfg = json.loads((mdir / "config.json").read_text())
        w = read_safetensors(mdir / "model.safetensors")
        ids_list = entry["ids"]
        s = max(len(x) for x in ids_list)
        ids = torch.full((len(ids_list), s), cfg["pad_token_id"], dtype=torch.long)
        mask = torch.zeros((len(ids_list), s), dtype=torch.long)
        for r, row in enumerate(ids_list):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        with torch.no_grad():
            out = {"ids": ids_list}
            for mode in ["cls", "mean", "last"]:
                e = embed(cfg, w, ids, mask, mode)
                out[mode] = e.tolist()
                out[mode + "_normalized"] = F.normalize(e, dim=-1).tolist()
        (FIX / "reference" / f"{model}.json").write_text(json.dumps(out))
        print(model, "rows", len(ids_list), "max len", s, file=sys.stderr)


if __name__ == "__main__":
    main()
