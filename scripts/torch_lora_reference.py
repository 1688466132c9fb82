"""LoRA gradient references from PEFT itself: tiny-qwen2 (Qwen2Model) and tiny-bert (BertModel)
wrapped by `peft.get_peft_model` with seeded nonzero A and B (B starts at zero in training, which
would make A's gradient zero), the InfoNCE loss of the shared training batch, and d loss / d every
adapter tensor. Run with the peer venv (PyTorch 2.13, transformers, peft):

    node dist/scripts/reference-inputs.js
    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_lora_reference.py

Writes test/fixtures/reference/lora-<case>/ (adapter_config.json + adapter_model.safetensors, as
PEFT saves them) and grad-lora-<case>.safetensors (gradients under PEFT's tensor names), and the
losses into losses.json.
"""
import json
import sys

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import AutoModel

from torch_qwen_reference import hidden, pool
from torch_reference import FIX, write_safetensors

CASES = [
    {"name": "lora-tiny-qwen2", "model": "tiny-qwen2", "pooling": "last", "temperature": 0.02, "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj", "down_proj"]},
    {"name": "lora-tiny-bert", "model": "tiny-bert", "pooling": "cls", "temperature": 0.05, "r": 2, "alpha": 4, "targets": ["query", "value", "dense"]},
]


def run(case, entry):
    base = AutoModel.from_pretrained(FIX / "models" / case["model"], dtype=torch.float64, attn_implementation="sdpa")
    cfg = LoraConfig(r=case["r"], lora_alpha=case["alpha"], lora_dropout=0.0, target_modules=case["targets"])
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:  # float32 values, so the adapter file (float32, as PEFT saves it) holds them exactly
                p.copy_((torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.1).float().double())
    model.float().save_pretrained(FIX / "reference" / case["name"])
    model.double()
    (FIX / "reference" / case["name"] / "README.md").unlink()  # PEFT's model card
    qwen = case["model"].startswith("tiny-qwen")
    if qwen:
        hq, qm = hidden(model, entry["queryIds"], "right")
        hp, pm = hidden(model, entry["passageIds"], "right")
    else:
        def bert(rows):
            s = max(map(len, rows))
            ids = torch.tensor([r + [0] * (s - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (s - len(r)) for r in rows])
            return model(input_ids=ids, attention_mask=mask).last_hidden_state, mask
        hq, qm = bert(entry["queryIds"])
        hp, pm = bert(entry["passageIds"])
    if case["pooling"] == "cls":
        q, p = hq[:, 0], hp[:, 0]
    else:
        q, p = pool(hq, qm, case["pooling"]), pool(hp, pm, case["pooling"])
    labels = torch.arange(q.shape[0]) * (p.shape[0] // q.shape[0])
    loss = F.cross_entropy(F.normalize(q, dim=-1) @ F.normalize(p, dim=-1).T / case["temperature"], labels)
    loss.backward()
    grads = {n: t.grad for n, t in model.named_parameters() if t.grad is not None}
    assert all("lora_" in n for n in grads), "only the adapters train"
    write_safetensors(FIX / "reference" / f"grad-{case['name']}.safetensors", grads)
    return float(loss.detach())


def main():
    inputs = json.loads((FIX / "reference" / "inputs.json").read_text())
    losses_path = FIX / "reference" / "losses.json"
    losses = json.loads(losses_path.read_text())
    for case in CASES:
        losses[case["name"]] = run(case, inputs["models"][case["model"]])
    losses_path.write_text(json.dumps(losses, indent=2))
    (FIX / "reference" / "lora-cases.json").write_text(json.dumps(CASES, indent=2))
    print("losses", {c["name"]: losses[c["name"]] for c in CASES}, file=sys.stderr)


if __name__ == "__main__":
    main()
