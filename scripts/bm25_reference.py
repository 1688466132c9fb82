"""BM25 scores from bm25s (method "lucene", k1 = 1.2, b = 0.75) over our tokens — the reference for
src/search/bm25.ts. bm25s leaves out Lucene's constant (k1 + 1) factor; it is multiplied back in.
Run with the peer venv (bm25s from the local wheelhouse), after building:
    ~/.cache/embedtune/peers/torch/bin/python scripts/bm25_reference.py
Writes test/fixtures/reference/bm25.json: each query's top 10 rows and scores.
"""
import json
import subprocess

import bm25s
import numpy as np

from torch_reference import FIX

K1, B = 1.2, 0.75
data = json.loads(subprocess.run(["node", str(FIX.parent.parent / "dist" / "scripts" / "bm25-tokens.js")], capture_output=True, text=True, check=True).stdout)
out = {}
for name, s in data.items():
    corpus = [d["tokens"] for d in s["corpus"]]
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    retriever.index(corpus, show_progress=False)
    rows = []
    for q in s["queries"]:
        scores = retriever.get_scores(q["tokens"]) * (K1 + 1)
        order = sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:10]
        rows.append({"query": q["text"], "top": [{"row": j, "score": float(scores[j])} for j in order if scores[j] > 0]})
    out[name] = {"corpus_size": len(corpus), "queries": rows}
(FIX / "reference" / "bm25.json").write_text(json.dumps(out, ensure_ascii=False) + "\n")
print({k: len(v["queries"]) for k, v in out.items()})
