"""Tiny rerankers and their reference scores, from Hugging Face's own implementations —
transformers' BertForSequenceClassification / XLMRobertaForSequenceClassification (float64) and
the Rust `tokenizers` library for pair encoding — nothing of ours. Run with the peer venv that
`npm run bench` builds from the local wheelhouse:

    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_reranker_reference.py

Writes test/fixtures/models/tiny-{bert,xlmr}-reranker (the tiny encoders' configs and
tokenizers, num_labels 1, seeded random weights, saved by save_pretrained) and
test/fixtures/reference/rerankers.json: for each model and max length, the Rust tokenizer's
pair ids and token type ids (`truncation='only_second'`) and the logit of every pair run alone
(no padding: the ground truth); null where the Rust library refuses to truncate the pair.
"""
import json
import shutil

import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, BertForSequenceClassification, XLMRobertaForSequenceClassification

from torch_reference import FIX

MODELS = {"tiny-bert": BertForSequenceClassification, "tiny-xlmr": XLMRobertaForSequenceClassification}
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

inputs = json.load(open(FIX / "reference" / "inputs.json"))
sentences = inputs["sentences"]
# Queries against passages, long and short, English and Chinese; the last pair needs cutting.
pairs = [[sentences[i % 5], sentences[(i * 7 + 3) % len(sentences)]] for i in range(12)]
pairs.append(["what is the lift of a swept wing", " ".join(sentences)])

out = {"pairs": pairs, "models": {}}
for name, cls in MODELS.items():
    src = FIX / "models" / name
    dst = FIX / "models" / f"{name}-reranker"
    config = AutoConfig.from_pretrained(src)
    config.num_labels = 1
    config.architectures = [cls.__name__]
    torch.manual_seed(7)
    model = cls(config).eval()
    # Wider weights than the default init, so scores differ visibly between pairs.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    dst.mkdir(exist_ok=True)
    model.save_pretrained(dst, safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (src / f).exists():
            shutil.copy(src / f, dst / f)
    model = model.double()
    tok = Tokenizer.from_file(str(dst / "tokenizer.json"))
    runs = {}
    for max_length in [24, 64]:
        tok.enable_truncation(max_length, strategy="only_second")
        rows = []
        for a, b in pairs:
            try:
                e = tok.encode(a, b)
            except Exception:  # the query alone leaves no room: transformers refuses the pair
                rows.append(None)
                continue
            ids = torch.tensor([e.ids])
            types = torch.tensor([e.type_ids])
            with torch.no_grad():
                logit = model(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids)).logits[0, 0].item()
            rows.append({"ids": e.ids, "type_ids": e.type_ids, "logit": logit})
        runs[str(max_length)] = rows
    out["models"][f"{name}-reranker"] = runs
    print(name, [r and round(r["logit"], 4) for r in runs["64"]], sum(r is None for r in runs["24"]), "refused at 24")

json.dump(out, open(FIX / "reference" / "rerankers.json", "w"), indent=1)
