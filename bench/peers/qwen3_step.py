"""PyTorch's side of the Qwen3-Embedding-0.6B-shape case, as users run it today: transformers'
Qwen3Model (float32, SDPA attention, eval mode), last-token pooling with left padding (as
Qwen3-Embedding's own usage), L2 normalisation, InfoNCE over in-batch and hard negatives,
torch.optim.AdamW, clip_grad_norm_; with `lora` the model is wrapped by PEFT's get_peft_model
(the adapters alone train). In its own process so its peak RSS is its own.

    python qwen3_step.py MODEL_DIR BATCH_JSON STEPS THREADS [full|lora]  → one JSON line on stdout
    python qwen3_step.py MODEL_DIR TEXT_IDS_JSON encode THREADS           (forward only, batches of 16)
"""
import json
import resource
import sys
import time

import torch
import torch.nn.functional as F
from transformers import AutoModel

from peer import encode_seconds

model_dir, batch_file, mode, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
variant = sys.argv[5] if len(sys.argv) > 5 else "full"
torch.set_num_threads(threads)
t0 = time.perf_counter()
model = AutoModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
load_seconds = time.perf_counter() - t0
pad = model.config.eos_token_id


def embed(rows):
    """Left-padded batch → normalised last-token states."""
    s = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (s - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (s - len(r)) + [1] * len(r) for r in rows])
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return F.normalize(h[:, -1], dim=-1)


def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if mode == "encode":
    rows = json.load(open(batch_file))
    seconds = encode_seconds(rows, embed)
    print(json.dumps({"torch": torch.__version__, "load_seconds": load_seconds, "seconds": seconds, "texts_per_second": len(rows) / seconds, "peak_rss_mib": rss()}))
    sys.exit(0)

if variant == "lora":
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
steps = int(mode)
batch = json.load(open(batch_file))
group = len(batch["passages"]) // len(batch["queries"])
labels = torch.arange(len(batch["queries"])) * group
trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
no_decay = lambda n: n.endswith(".bias") or "norm" in n
opt = torch.optim.AdamW(
    [{"params": [p for n, p in trainable if not no_decay(n)], "weight_decay": 0.01}, {"params": [p for n, p in trainable if no_decay(n)], "weight_decay": 0.0}],
    lr=1e-5,
)
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(embed(batch["queries"]) @ embed(batch["passages"]).T / batch["temperature"], labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
    opt.step()
    times.append(time.perf_counter() - t0)
print(json.dumps({"torch": torch.__version__, "load_seconds": load_seconds, "step_seconds": times, "loss": loss.item(), "peak_rss_mib": rss(), "trainable": sum(p.numel() for _, p in trainable)}))
