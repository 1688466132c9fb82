"""PyTorch's side of the bge-m3-shape training step, in its own process so its peak RSS is its own.

Hugging Face's XLMRobertaModel forward transcribed from its definition (padding-offset position
ids, one token-type row, then peer.py's post-LayerNorm encoder with exact GELU; eval mode, no
dropout), CLS pooling,
L2 normalisation, InfoNCE over in-batch and hard negatives, torch.optim.AdamW, clip_grad_norm_.

    python xlmr_step.py MODEL_DIR BATCH_JSON STEPS THREADS   → one JSON line on stdout
    python xlmr_step.py MODEL_DIR TEXT_IDS_JSON encode THREADS  (forward only, batches of 16)
"""
import json
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from peer import encode_seconds, encoder  # the shared BERT / XLM-R layer stack

model_dir, batch_file, mode, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
t0 = time.perf_counter()
cfg = json.load(open(f"{model_dir}/config.json"))
raw = np.memmap(f"{model_dir}/model.safetensors", dtype=np.uint8, mode="r")
(n,) = struct.unpack("<Q", bytes(raw[:8]))
header = json.loads(bytes(raw[8 : 8 + n]))
w = {}
for name, e in header.items():
    if name == "__metadata__":
        continue
    a, b = e["data_offsets"]
    t = torch.from_numpy(np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(e["shape"]).copy())
    w[name] = torch.nn.Parameter(t)
del raw
load_seconds = time.perf_counter() - t0

pad = cfg["pad_token_id"]


def xlmr(ids, mask):
    not_pad = (ids != pad).long()
    positions = torch.cumsum(not_pad, 1) * not_pad + pad
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions] + w["embeddings.token_type_embeddings.weight"][0]
    return F.normalize(encoder(cfg, w, x, mask)[:, 0], dim=-1)


def padded(rows):
    s = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad] * (s - len(r)) for r in rows])
    return ids, (ids != pad).long()


if mode == "encode":
    rows = json.load(open(batch_file))
    seconds = encode_seconds(rows, lambda b: xlmr(*padded(b)))
    print(json.dumps({"torch": torch.__version__, "load_seconds": load_seconds, "seconds": seconds, "texts_per_second": len(rows) / seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    sys.exit(0)

steps = int(mode)
batch = json.load(open(batch_file))
q_ids, q_mask = padded(batch["queries"])
p_ids, p_mask = padded(batch["passages"])
group = len(batch["passages"]) // len(batch["queries"])
labels = torch.arange(len(batch["queries"])) * group
decay = [p for name, p in w.items() if not (name.endswith(".bias") or "LayerNorm" in name)]
rest = [p for name, p in w.items() if name.endswith(".bias") or "LayerNorm" in name]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=1e-5)
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    scores = xlmr(q_ids, q_mask) @ xlmr(p_ids, p_mask).T / batch["temperature"]
    loss = F.cross_entropy(scores, labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
    opt.step()
    times.append(time.perf_counter() - t0)
print(json.dumps({"torch": torch.__version__, "load_seconds": load_seconds, "step_seconds": times, "loss": loss.item(), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
