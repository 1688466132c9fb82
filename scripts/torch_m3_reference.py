"""bge-m3's three outputs for tiny-xlmr with the heads of scripts/torch_m3_heads.py, computed
from the M3-Embedding paper's definitions (as FlagEmbedding's BGEM3 model computes them) with
transformers' XLMRobertaModel in float64 — nothing of ours:
  dense   = normalize(h[CLS])
  sparse  = relu(sparse_linear(h)) per token; special tokens dropped; a token's weight the max
            over its occurrences; score(q, p) = Σ over shared tokens of w_q · w_p
  colbert = normalize(colbert_linear(h[1:]) · mask[1:]) for the text's tokens after CLS;
            score(q, p) = mean over q's vectors of the max dot product over p's vectors
Run with the peer venv:  ~/.cache/embedtune/peers/torch/bin/python scripts/torch_m3_reference.py
Writes test/fixtures/reference/m3-outputs.json.
"""
import json

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import XLMRobertaModel

from torch_reference import FIX

model_dir = FIX / "models" / "tiny-xlmr"
model = XLMRobertaModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager").double().eval()
tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
special = {t["id"] for t in json.load(open(model_dir / "tokenizer.json"))["added_tokens"] if t["special"]}
heads = {}
for name in ["sparse_linear", "colbert_linear"]:
    sd = torch.load(FIX / "reference" / "pickles" / f"{name}.pt")
    heads[name] = (sd["weight"].double(), sd["bias"].double())

texts = ["what is the lift of a swept wing", "lift lift lift", "Swept wings delay the onset of compressibility effects.", "drag rises near mach one", "风洞实验"]
out = []
for t in texts:
    ids = tok.encode(t).ids
    with torch.no_grad():
        h = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).last_hidden_state[0]
        dense = F.normalize(h[0], dim=-1)
        w = torch.relu(h @ heads["sparse_linear"][0].T + heads["sparse_linear"][1])[:, 0]
        sparse = {}
        for i, w_i in zip(ids, w.tolist()):
            if i in special or w_i <= 0:
                continue
            sparse[str(i)] = max(sparse.get(str(i), 0.0), w_i)
        colbert = F.normalize(h[1:] @ heads["colbert_linear"][0].T + heads["colbert_linear"][1], dim=-1)
    out.append({"text": t, "ids": ids, "dense": dense.tolist(), "sparse": sparse, "colbert": colbert.tolist()})


def sparse_score(a, b):
    return sum(w * b[k] for k, w in a.items() if k in b)


def colbert_score(a, b):
    s = torch.tensor(a) @ torch.tensor(b).T
    return (s.max(dim=1).values.sum() / len(a)).item()


scores = {"sparse": [[sparse_score(a["sparse"], b["sparse"]) for b in out] for a in out],
          "colbert": [[colbert_score(a["colbert"], b["colbert"]) for b in out] for a in out],
          "dense": [[float(torch.tensor(a["dense"]) @ torch.tensor(b["dense"])) for b in out] for a in out]}
(FIX / "reference" / "m3-outputs.json").write_text(json.dumps({"texts": out, "scores": scores}) + "\n")
print("wrote", FIX / "reference" / "m3-outputs.json")
