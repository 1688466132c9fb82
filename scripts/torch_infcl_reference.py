"""Reference for the tiled InfoNCE (src/losses/inf-cl.ts), written from the definition — the
spec's SimpleInfclLoss / MatryoshkaInfclLoss: cross-entropy of scale · q̃ p̃ᵀ against label i · G
(the positive first in each query's group of G passages), q̃ / p̃ the embeddings cut to each
Matryoshka prefix and re-normalised, the weighted sum over prefixes — computed densely in float64
with torch autograd for ∂loss/∂q and ∂loss/∂p. Nothing of ours is used. Run with the peer venv:

    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_infcl_reference.py

Writes test/fixtures/reference/inf-cl.json.
"""
import json

import torch
import torch.nn.functional as F

from torch_reference import FIX

torch.manual_seed(7)


def case(name, queries, group, dim, scale, dims=None, weights=None):
    q = F.normalize(torch.randn(queries, dim, dtype=torch.float64), dim=-1).float().double().requires_grad_()
    p = F.normalize(torch.randn(queries * group, dim, dtype=torch.float64), dim=-1).float().double().requires_grad_()
    labels = torch.arange(queries) * group
    loss = torch.zeros((), dtype=torch.float64)
    for i, m in enumerate(dims or [dim]):
        qm, pm = (q, p) if m == dim else (F.normalize(q[:, :m], dim=-1), F.normalize(p[:, :m], dim=-1))
        w = weights[i] if weights else 1.0
        loss = loss + w * F.cross_entropy(scale * qm @ pm.T, labels)
    loss.backward()
    return {
        "name": name, "queries": queries, "group": group, "dim": dim, "scale": scale,
        "dims": dims, "weights": weights,
        "q": q.detach().flatten().tolist(), "p": p.detach().flatten().tolist(),
        "loss": loss.item(), "dq": q.grad.flatten().tolist(), "dp": p.grad.flatten().tolist(),
    }


cases = [
    case("group 1", 9, 1, 16, 1.0),
    case("group 8", 5, 8, 16, 1.0),
    case("group 8, scale 1/0.05 (a temperature)", 5, 8, 16, 20.0),
    case("matryoshka 4, 8, 16 (weights 1, 0.5, 2)", 6, 4, 16, 1.0, [4, 8, 16], [1.0, 0.5, 2.0]),
]
(FIX / "reference" / "inf-cl.json").write_text(json.dumps(cases) + "\n")
print("wrote", FIX / "reference" / "inf-cl.json")
