"""The benchmark's peers, driven by bench/run.ts over stdin/stdout (one JSON command per line),
so that ours and theirs run interleaved in one session: PyTorch CPU (a plain BERT on the same
safetensors weights), sentence-transformers itself (encode, InformationRetrievalEvaluator,
mine_hard_negatives), faiss IndexFlatIP, the spec's greedy faiss dedup loop,
sentence-transformers-style community detection in PyTorch, and OpenBLAS sgemm through numpy.

Installed by bench/peers/setup.sh (a venv from the local wheelhouse), never by CI or the tests.
"""
import json
import math
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

STATE = {}


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    return {
        name: torch.tensor(np.frombuffer(raw[8 + n + e["data_offsets"][0] : 8 + n + e["data_offsets"][1]], dtype="<f4").reshape(e["shape"]).copy())
        for name, e in header.items()
        if name != "__metadata__"
    }


def bert(cfg, w, ids, mask):
    """Hugging Face BertModel's forward, transcribed (eval mode: no dropout)."""
    s = ids.shape[1]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:s] + w["embeddings.token_type_embeddings.weight"][0]
    return encoder(cfg, w, x, mask)


def encoder(cfg, w, x, mask):
    """The post-LayerNorm encoder BERT and XLM-RoBERTa share: embedding LayerNorm, then every layer."""
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = h // heads
    b, s = mask.shape
    ln = lambda t, p: F.layer_norm(t, (h,), w[p + ".weight"], w[p + ".bias"], cfg["layer_norm_eps"])
    lin = lambda t, p: F.linear(t, w[p + ".weight"], w[p + ".bias"])
    x = ln(x, "embeddings.LayerNorm")
    ext = (1.0 - mask[:, None, None, :].float()) * -1e9
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        split = lambda t: t.view(b, s, heads, d).transpose(1, 2)
        q, k, v = (split(lin(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        ctx = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + ext, dim=-1) @ v
        x = ln(x + lin(ctx.transpose(1, 2).reshape(b, s, h), p + ".attention.output.dense"), p + ".attention.output.LayerNorm")
        x = ln(x + lin(F.gelu(lin(x, p + ".intermediate.dense")), p + ".output.dense"), p + ".output.LayerNorm")
    return x


def encode_seconds(rows, embed, batch=16):
    """Seconds to embed token-id rows in length-sorted batches (as ours), forward only."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(rows), batch):
            embed([rows[i] for i in order[start : start + batch]])
    return time.perf_counter() - t0


def mean_pool(x, mask):
    m = mask.unsqueeze(-1).float()
    return F.normalize((x * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def pad(rows):
    s = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), s), dtype=torch.long)
    mask = torch.zeros((len(rows), s), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def load_bert(c):
    cfg = json.load(open(c["dir"] + "/config.json"))
    w = read_safetensors(c["dir"] + "/model.safetensors")
    STATE["bert"] = (cfg, w)
    return {}


def encode(c):
    cfg, w = STATE["bert"]
    batches = [pad(b) for b in json.load(open(c["batches"]))]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for ids, mask in batches:
            mean_pool(bert(cfg, w, ids, mask), mask)
    return {"seconds": time.perf_counter() - t0}


def train_step(c):
    """Forward + backward + AdamW of InfoNCE with in-batch and hard negatives, as our trainer."""
    cfg, w = STATE["bert"]
    if "opt" not in STATE:
        for t in w.values():
            t.requires_grad_(True)
        STATE["opt"] = torch.optim.AdamW(list(w.values()), lr=1e-5, weight_decay=0.01)
    batch = json.load(open(c["batch"]))
    qi, qm = pad(batch["queries"])
    pi, pm = pad(batch["passages"])
    t0 = time.perf_counter()
    q = mean_pool(bert(cfg, w, qi, qm), qm)
    p = mean_pool(bert(cfg, w, pi, pm), pm)
    group = p.shape[0] // q.shape[0]
    loss = F.cross_entropy(q @ p.T / 0.05, torch.arange(q.shape[0]) * group)
    STATE["opt"].zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
    STATE["opt"].step()
    return {"seconds": time.perf_counter() - t0, "loss": float(loss)}


def load_f32(path, dim):
    return np.fromfile(path, dtype="<f4").reshape(-1, dim)


def faiss_topk(c):
    import faiss

    corpus, queries = load_f32(c["corpus"], c["dim"]), load_f32(c["queries"], c["dim"])
    index = faiss.IndexFlatIP(c["dim"])
    index.add(corpus)
    t0 = time.perf_counter()
    scores, ids = index.search(queries, c["k"])
    return {"seconds": time.perf_counter() - t0, "first": ids[0, :5].tolist()}


def dedup_faiss(c):
    """The spec's Clean_Query approach: a faiss index of all queries, each query's nearest
    neighbours (k = 64), then a greedy pass in input order dropping a query whose neighbour that
    is already kept scores at or above the threshold."""
    import faiss

    v = load_f32(c["vectors"], c["dim"])
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(c["dim"])
    index.add(v)
    scores, ids = index.search(v, 64)
    keep = np.zeros(v.shape[0], dtype=bool)
    for i in range(v.shape[0]):
        near = ids[i][(scores[i] >= c["threshold"]) & (ids[i] < i)]
        keep[i] = not keep[near].any()
    return {"seconds": time.perf_counter() - t0, "kept": int(keep.sum())}


def community(c):
    """sentence-transformers util.community_detection (min_community_size=1), blockwise in PyTorch."""
    v = torch.from_numpy(load_f32(c["vectors"], c["dim"]))
    t0 = time.perf_counter()
    threshold, n = c["threshold"], v.shape[0]
    extracted, communities = set(), []
    sort_max = min(1000, n)
    for start in range(0, n, 1000):
        sims = v[start : start + 1000] @ v.T
        top_val, _ = sims.topk(k=1, largest=True)
        for i in range(len(top_val)):
            if top_val[i][-1] >= threshold:
                vals, idx = sims[i].topk(k=sort_max, largest=True)
                members = idx[vals >= threshold].tolist()
                communities.append(members)
    communities = sorted(communities, key=len, reverse=True)
    unique = []
    for com in communities:
        fresh = [i for i in com if i not in extracted]
        if fresh:
            unique.append(fresh)
            extracted.update(fresh)
    return {"seconds": time.perf_counter() - t0, "communities": len(unique)}


def sgemm(c):
    a = np.random.default_rng(0).standard_normal((c["m"], c["k"]), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((c["k"], c["n"]), dtype=np.float32)
    a @ b
    t0 = time.perf_counter()
    for _ in range(c["reps"]):
        a @ b
    return {"seconds": (time.perf_counter() - t0) / c["reps"]}


def versions(_):
    import faiss
    import sentence_transformers
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__, "faiss": faiss.__version__, "sentence_transformers": sentence_transformers.__version__, "transformers": transformers.__version__}


def st_model(c):
    """A SentenceTransformer over the model folder (Transformer + mean pooling + Normalize), loaded once per folder."""
    from sentence_transformers import SentenceTransformer, models

    key = ("st", c["dir"])
    if key not in STATE:
        word = models.Transformer(c["dir"], max_seq_length=c.get("max_length", 128))
        STATE[key] = SentenceTransformer(modules=[word, models.Pooling(word.get_word_embedding_dimension(), "mean"), models.Normalize()], device="cpu")
    return STATE[key]


def st_encode(c):
    model = st_model(c)
    texts = json.load(open(c["texts"]))
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32, show_progress_bar=False)
    return {"seconds": time.perf_counter() - t0}


def st_eval(c):
    """InformationRetrievalEvaluator on a BEIR folder (binary relevance), model loading included."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    t0 = time.perf_counter()
    STATE.pop(("st", c["dir"]), None)
    model = st_model(c)
    rows = lambda f: [json.loads(l) for l in open(f"{c['beir']}/{f}") if l.strip()]
    # BEIR's convention, as embedtune reads the folder: "title text" when a title is set.
    corpus = {d["_id"]: f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in rows("corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in rows("queries.jsonl")}
    relevant = {}
    for line in list(open(f"{c['beir']}/qrels/test.tsv"))[1:]:
        q, d, score = line.rstrip("\n").split("\t")
        if int(score) > 0:
            relevant.setdefault(q, set()).add(d)
    queries = {q: t for q, t in queries.items() if q in relevant}
    ks = [1, 3, 5, 10]
    ev = InformationRetrievalEvaluator(queries, corpus, relevant, mrr_at_k=ks, ndcg_at_k=ks, accuracy_at_k=ks, precision_recall_at_k=ks, map_at_k=ks, batch_size=32, write_csv=False)
    out = ev(model)
    seconds = time.perf_counter() - t0
    name = {"accuracy": "hit", "mrr": "mrr", "ndcg": "ndcg", "recall": "recall", "precision": "precision", "map": "map"}
    metrics = {}
    for key, value in out.items():
        parts = key.split("_")  # cosine_ndcg@10
        metric, k = parts[-1].split("@")
        if metric in name:
            metrics[f"{name[metric]}@{k}"] = value
    return {"seconds": seconds, "metrics": metrics}


def st_mine(c):
    """sentence-transformers' mine_hard_negatives, model loading included."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    t0 = time.perf_counter()
    STATE.pop(("st", c["dir"]), None)
    model = st_model(c)
    records = [json.loads(l) for l in open(c["records"]) if l.strip()]
    dataset = Dataset.from_dict({"query": [r["query"] for r in records], "positive": [r["pos_passage"][0] for r in records]})
    corpus = [json.loads(l)["text"] for l in open(c["corpus"]) if l.strip()]
    mined = mine_hard_negatives(dataset, model, corpus=corpus, range_min=c["range_min"], range_max=c["range_max"], num_negatives=c["num_negatives"], sampling_strategy="random", output_format="n-tuple", batch_size=32, verbose=False)
    return {"seconds": time.perf_counter() - t0, "rows": len(mined)}


def rss(_):
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


COMMANDS = {f.__name__: f for f in (load_bert, encode, train_step, faiss_topk, dedup_faiss, community, sgemm, versions, st_encode, st_eval, st_mine, rss)}

if __name__ == "__main__":  # run by bench/run.ts; xlmr_step.py imports the encoder from here
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    for line in sys.stdin:
        c = json.loads(line)
        try:
            out = COMMANDS[c["cmd"]](c)
        except Exception as e:  # reported to the harness, which stops with the message
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
