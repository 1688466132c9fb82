"""Reference losses and gradients for distillation (issue 13), written from the definitions —
FlagEmbedding's `kl_div` (−mean Σ softmax(teacher) · log_softmax(student over the query's own
group), added to InfoNCE) and MarginMSE (Hofstätter et al.; sentence-transformers' MarginMSELoss:
MSE between student and teacher positive-minus-negative margins) — in float64 with torch autograd.

    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_distill_reference.py

Writes test/fixtures/reference/distill.json: embeddings, teacher scores, and for each loss type
the total loss (InfoNCE + weight · distillation) and its gradients with respect to the
query and passage embeddings.
"""
import json

import torch
import torch.nn.functional as F

from torch_reference import FIX

torch.manual_seed(3)
Q, G, D = 4, 3, 8
TAU, TEACHER_TAU, WEIGHT = 0.05, 2.0, 0.5
q0 = F.normalize(torch.randn(Q, D, dtype=torch.float64), dim=-1)
p0 = F.normalize(torch.randn(Q * G, D, dtype=torch.float64), dim=-1)
teacher = torch.randn(Q, G, dtype=torch.float64) * 3

out = {"queries": q0.tolist(), "passages": p0.tolist(), "teacher": teacher.tolist(), "temperature": TAU, "teacher_temperature": TEACHER_TAU, "weight": WEIGHT, "losses": {}}
for kind in ["kl_div", "margin_mse"]:
    q = q0.clone().requires_grad_(True)
    p = p0.clone().requires_grad_(True)
    scores = q @ p.T / TAU
    infonce = F.cross_entropy(scores, torch.arange(Q) * G)
    own = (q[:, None, :] * p.view(Q, G, D)).sum(-1)  # each query against its own group
    if kind == "kl_div":
        targets = F.softmax(teacher / TEACHER_TAU, dim=-1)
        kd = -torch.mean(torch.sum(F.log_softmax(own / TAU, dim=-1) * targets, dim=-1))
    else:
        kd = F.mse_loss(own[:, :1] - own[:, 1:], teacher[:, :1] - teacher[:, 1:])
    loss = infonce + WEIGHT * kd
    loss.backward()
    out["losses"][kind] = {"loss": loss.item(), "grad_queries": q.grad.tolist(), "grad_passages": p.grad.tolist()}
    print(kind, loss.item())
json.dump(out, open(FIX / "reference" / "distill.json", "w"), indent=1)
