"""Reference ids, embeddings and gradients for the tiny Qwen2 / Qwen3 models, from Hugging Face's
own implementations (transformers' Qwen2Model / Qwen3Model, float64, SDPA attention: eager gives NaN for left-padded rows in transformers 5.18) and the
Rust `tokenizers` library — nothing of ours. Run with the peer venv that `npm run bench` builds
from the local wheelhouse (PyTorch 2.13, transformers, tokenizers):

    node dist/scripts/make-qwen.js && node dist/scripts/reference-inputs.js
    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_qwen_reference.py

Writes test/fixtures/reference/tiny-qwen{2,3}.json: Rust tokenizer ids (truncated as
`tokenizer(..., truncation=True, max_length=L)` does), and last-token / mean embeddings of each
sentence run alone (no padding: the ground truth), checked here against left- and right-padded
batches; and grad-tiny-qwen*.safetensors with the InfoNCE loss in losses.json.
"""
import json
import sys

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import AutoModel

from torch_reference import FIX, write_safetensors

MODELS = ["tiny-qwen2", "tiny-qwen3"]


def load(name):
    model = AutoModel.from_pretrained(FIX / "models" / name, dtype=torch.float64, attn_implementation="sdpa")
    return model.eval()


def rust_ids(name, texts, max_length):
    tok = Tokenizer.from_file(str(FIX / "models" / name / "tokenizer.json"))
    tok.enable_truncation(max_length)
    return [e.ids for e in tok.encode_batch(texts)]


def hidden(model, rows, side):
    """Hidden states of a padded batch; pad id 0 under a zero mask."""
    s = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), s), dtype=torch.long)
    mask = torch.zeros((len(rows), s), dtype=torch.long)
    for i, r in enumerate(rows):
        at = slice(s - len(r), s) if side == "left" else slice(0, len(r))
        ids[i, at] = torch.tensor(r)
        mask[i, at] = 1
    # Position ids from the mask (as generate() does), so a left-padded row starts at 0 like an
    # unpadded one; HF's default arange would offset it, equal only up to its float32 RoPE angles.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state, mask


def pool(h, mask, mode):
    if mode == "mean":
        m = mask.unsqueeze(-1).double()
        return (h * m).sum(1) / m.sum(1)
    # The last real token, for either padding side.
    last = (mask * torch.arange(1, mask.shape[1] + 1)).argmax(1)
    return h[torch.arange(h.shape[0]), last]


def embeddings(name, entry, sentences):
    model = load(name)
    ids = rust_ids(name, sentences, entry["maxLength"])
    assert ids == entry["ids"], f"{name}: our tokenizer's ids differ from the Rust tokenizers library's"
    out = {"ids": ids}
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([r])).last_hidden_state[0] for r in ids]
        for mode in ["last", "mean"]:
            e = torch.stack([h[-1] if mode == "last" else h.mean(0) for h in alone])
            for side in ["left", "right"]:
                h, mask = hidden(model, ids, side)
                diff = (pool(h, mask, mode) - e).abs().max().item()
                assert diff < 1e-9, f"{name} {mode} {side}-padded: {diff}"
            out[mode] = e.tolist()
            out[mode + "_normalized"] = F.normalize(e, dim=-1).tolist()
    (FIX / "reference" / f"{name}.json").write_text(json.dumps(out))
    print(name, "rows", len(ids), "max len", max(map(len, ids)), file=sys.stderr)


def gradients(case, entry, training):
    model = load(case["model"])
    assert rust_ids(case["model"], training["queries"], 16) == entry["queryIds"]
    assert rust_ids(case["model"], training["passages"], 32) == entry["passageIds"]
    hq, qm = hidden(model, entry["queryIds"], "left")
    hp, pm = hidden(model, entry["passageIds"], "left")
    q, p = pool(hq, qm, case["pooling"]), pool(hp, pm, case["pooling"])
    labels = torch.arange(q.shape[0]) * (p.shape[0] // q.shape[0])

    def ce(qq, pp):
        qq, pp = F.normalize(qq, dim=-1), F.normalize(pp, dim=-1)
        return F.cross_entropy(qq @ pp.T / case["temperature"], labels)

    dims = case["matryoshkaDims"]
    loss = sum(w * ce(q[:, :d], p[:, :d]) for d, w in zip(dims, case["matryoshkaWeights"])) if dims else ce(q, p)
    loss.backward()
    grads = {n: t.grad for n, t in model.named_parameters() if t.grad is not None}
    write_safetensors(FIX / "reference" / f"grad-{case['name']}.safetensors", grads)
    return float(loss)


def main():
    torch.manual_seed(0)
    inputs = json.loads((FIX / "reference" / "inputs.json").read_text())
    for name in MODELS:
        embeddings(name, inputs["models"][name], inputs["sentences"])
    losses_path = FIX / "reference" / "losses.json"
    losses = json.loads(losses_path.read_text())
    for case in inputs["gradientCases"]:
        if case["model"] in MODELS:
            losses[case["name"]] = gradients(case, inputs["models"][case["model"]], inputs["training"])
    losses_path.write_text(json.dumps(losses, indent=2))
    print("losses", {k: v for k, v in losses.items() if "qwen" in k}, file=sys.stderr)


if __name__ == "__main__":
    main()
