"""bge-m3's unified fine-tuning loss (Chen et al., 2024, "M3-Embedding", §3.3) for tiny-xlmr with the
heads of scripts/torch_m3_heads.py, in float64 with transformers' XLMRobertaModel — nothing of ours.
Over a batch of queries and their groups (positive first; every passage in the batch a negative):
  s_dense   = normalize(h_q[CLS]) · normalize(h_p[CLS])
  s_lex     = Σ over tokens t in both of w_q(t) · w_p(t),  w(t) = max over t's occurrences of
              relu(sparse_linear(h)) (special tokens dropped)
  s_mul     = mean over q's tokens after CLS of max over p's tokens after CLS of the dot product of
              normalize(colbert_linear(h))  (real tokens only: padding is not a token)
  s_inter   = s_dense + 0.3 · s_lex + s_mul                     (all divided by the temperature)
  L         = (CE(s_dense) + CE(s_inter) + 0.1 · CE(s_lex) + CE(s_mul)) / 4
  self-KD:  L' = (L + (KL(s_dense) + 0.1 · KL(s_lex) + KL(s_mul)) / 3) / 2, KL(s) = −mean_q Σ
              softmax(s_inter)·log_softmax(s), the teacher s_inter held fixed (detached)
(the weights and the self-distillation as FlagEmbedding's unified fine-tuning applies them).
Writes test/fixtures/reference/m3-unified.json (losses; the heads' gradients with and without
self-KD) and grad-tiny-xlmr-m3.safetensors (every weight's gradient, with self-KD).
Run with the peer venv:  ~/.cache/embedtune/peers/torch/bin/python scripts/torch_m3_unified_reference.py
"""
import json

import torch
import torch.nn.functional as F
from transformers import XLMRobertaModel

from torch_reference import FIX, pad, write_safetensors

TEMPERATURE = 0.05
mdir = FIX / "models" / "tiny-xlmr"
cfg = json.loads((mdir / "config.json").read_text())
special = {t["id"] for t in json.load(open(mdir / "tokenizer.json"))["added_tokens"] if t["special"]}
inputs = json.loads((FIX / "reference" / "inputs.json").read_text())["models"]["tiny-xlmr"]


def run(self_distill):
    model = XLMRobertaModel.from_pretrained(mdir, add_pooling_layer=False, attn_implementation="eager").double().train(False)
    heads = {}
    for name in ["sparse_linear", "colbert_linear"]:
        sd = torch.load(FIX / "reference" / "pickles" / f"{name}.pt")
        heads[name] = {k: v.double().clone().requires_grad_(True) for k, v in sd.items()}

    def reps(ids_list):
        ids, mask = pad(ids_list, cfg["pad_token_id"])
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        dense = F.normalize(h[:, 0], dim=-1)
        w = torch.relu(h @ heads["sparse_linear"]["weight"].T + heads["sparse_linear"]["bias"])[..., 0]
        sparse = []
        for r, row in enumerate(ids_list):
            weights = {}
            for t, i in enumerate(row):
                if i in special:
                    continue
                weights[i] = torch.maximum(weights[i], w[r, t]) if i in weights else w[r, t]
            sparse.append(weights)
        col = F.normalize(h @ heads["colbert_linear"]["weight"].T + heads["colbert_linear"]["bias"], dim=-1)
        colbert = [col[r, 1 : len(row)] for r, row in enumerate(ids_list)]
        return dense, sparse, colbert

    qd, qs, qc = reps(inputs["queryIds"])
    pd, ps, pc = reps(inputs["passageIds"])
    nq, npass = len(qs), len(ps)
    zero = torch.zeros((), dtype=torch.float64)
    s_dense = qd @ pd.T
    s_lex = torch.stack([torch.stack([sum((w * b[t] for t, w in a.items() if t in b), zero) for b in ps]) for a in qs])
    s_mul = torch.stack([torch.stack([(qv @ pv.T).max(dim=1).values.mean() for pv in pc]) for qv in qc])
    s_dense, s_lex, s_mul = s_dense / TEMPERATURE, s_lex / TEMPERATURE, s_mul / TEMPERATURE
    s_inter = s_dense + 0.3 * s_lex + s_mul
    labels = torch.arange(nq) * (npass // nq)
    ce = lambda s: F.cross_entropy(s, labels)
    loss = (ce(s_dense) + ce(s_inter) + 0.1 * ce(s_lex) + ce(s_mul)) / 4
    if self_distill:
        teacher = torch.softmax(s_inter.detach(), dim=-1)
        kl = lambda s: -(teacher * torch.log_softmax(s, dim=-1)).sum(-1).mean()
        loss = (loss + (kl(s_dense) + 0.1 * kl(s_lex) + kl(s_mul)) / 3) / 2
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for name, sd in heads.items():
        for k, v in sd.items():
            grads[f"{name}.{k}"] = v.grad
    shared = sum(1 for a in qs for b in ps for t in a if t in b)
    return float(loss), grads, shared


out = {"temperature": TEMPERATURE}
for case, sd in [("plain", False), ("self_distill", True)]:
    loss, grads, shared = run(sd)
    out[case] = {"loss": loss, "heads": {k: v.flatten().tolist() for k, v in grads.items() if k.startswith(("sparse_linear", "colbert_linear"))}}
    print(case, "loss", loss, "query-passage token matches", shared)
    if sd:
        write_safetensors(FIX / "reference" / "grad-tiny-xlmr-m3.safetensors", {k: v.float() for k, v in grads.items()})
(FIX / "reference" / "m3-unified.json").write_text(json.dumps(out) + "\n")
