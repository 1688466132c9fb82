"""Loads an exported bge-m3-layout folder the way FlagEmbedding's BGEM3FlagModel does (its
EncoderOnlyEmbedderM3Runner.get_model and M3Embedder.encode, restated: the encoder by
transformers, each head by `torch.load(..., map_location='cpu', weights_only=True)` into an
nn.Linear, dense = normalize(h[CLS]), lexical weights = relu(sparse_linear(h)) per token (cls, eos,
pad and unk dropped, max over repeats), colbert = normalize(colbert_linear(h[1:]) · mask) for the
text's tokens) and compares with what `embedtune encode --modes dense,sparse,colbert` wrote.
FlagEmbedding itself is not in the local wheelhouse. Run with the peer venv:

    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_m3_export_check.py FOLDER OURS.jsonl [MAX_LENGTH]

(MAX_LENGTH: the token limit encode ran with; default 512.)

Prints one JSON line: the largest differences; exit 1 past 1e-4.
"""
import json
import sys

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

folder, ours_path = sys.argv[1], sys.argv[2]
max_length = int(sys.argv[3]) if len(sys.argv) > 3 else 512
ours = [json.loads(l) for l in open(ours_path, encoding="utf8")]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModel.from_pretrained(folder, add_pooling_layer=False, attn_implementation="eager").eval()
hidden = model.config.hidden_size
heads = {}
for name in ["colbert_linear", "sparse_linear"]:
    state = torch.load(f"{folder}/{name}.pt", map_location="cpu", weights_only=True)
    layer = torch.nn.Linear(hidden, state["weight"].shape[0])
    layer.load_state_dict(state)
    heads[name] = layer.eval()
unused = {tok.convert_tokens_to_ids(tok.special_tokens_map[t]) for t in ["cls_token", "eos_token", "pad_token", "unk_token"] if t in tok.special_tokens_map}

worst = {"dense": 0.0, "sparse": 0.0, "colbert": 0.0, "sparse_tokens_differ": 0}
with torch.no_grad():
    for row in ours:
        enc = tok([row["text"]], truncation=True, max_length=max_length, return_tensors="pt")
        h = model(**enc).last_hidden_state
        dense = F.normalize(h[:, 0], dim=-1)[0]
        weights = torch.relu(heads["sparse_linear"](h))[0, :, 0]
        lexical = {}
        for w, i in zip(weights.tolist(), enc["input_ids"][0].tolist()):
            if i not in unused and w > 0 and w > lexical.get(str(i), 0):
                lexical[str(i)] = w
        colbert = F.normalize(heads["colbert_linear"](h[:, 1:]) * enc["attention_mask"][:, 1:][:, :, None].float(), dim=-1)[0]
        colbert = colbert[: int(enc["attention_mask"].sum()) - 1]
        worst["dense"] = max(worst["dense"], (dense - torch.tensor(row["dense_vecs"])).abs().max().item())
        if set(lexical) != set(row["lexical_weights"]):
            worst["sparse_tokens_differ"] += 1
        for k, v in lexical.items():
            worst["sparse"] = max(worst["sparse"], abs(v - row["lexical_weights"].get(k, 0.0)))
        worst["colbert"] = max(worst["colbert"], (colbert - torch.tensor(row["colbert_vecs"])).abs().max().item())
worst["texts"] = len(ours)
worst["ok"] = worst["sparse_tokens_differ"] == 0 and max(worst["dense"], worst["sparse"], worst["colbert"]) <= 1e-4
print(json.dumps(worst))
sys.exit(0 if worst["ok"] else 1)
