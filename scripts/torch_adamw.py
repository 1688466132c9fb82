"""Reference for one optimizer run: torch.optim.AdamW, three steps, with and without weight decay.

    /usr/bin/python3 scripts/torch_adamw.py   # writes test/fixtures/reference/adamw.json
Parameters and gradients are closed-form (sin/cos) so the fixture stores only results.
"""
import json
import math
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "reference" / "adamw.json"
N = 16


def init(k):
    return torch.tensor([math.sin(i + k) for i in range(N)], dtype=torch.float32)


def grad(step, k):
    return torch.tensor([math.cos((i + 1) * (step + 1) + k) * (0.1 if i % 3 else 10) for i in range(N)], dtype=torch.float32)


decayed = torch.nn.Parameter(init(0))
plain = torch.nn.Parameter(init(1))
opt = torch.optim.AdamW(
    [{"params": [decayed], "weight_decay": 0.1}, {"params": [plain], "weight_decay": 0.0}],
    lr=0.05, betas=(0.9, 0.999), eps=1e-8,
)
lrs = [0.05, 0.03, 0.01]
for step, lr in enumerate(lrs):
    for group in opt.param_groups:
        group["lr"] = lr
    decayed.grad = grad(step, 0)
    plain.grad = grad(step, 1)
    opt.step()
OUT.write_text(json.dumps({"n": N, "lrs": lrs, "weight_decay": 0.1, "decayed": decayed.detach().tolist(), "plain": plain.detach().tolist()}))
