"""sentence-transformers' own embeddings of model folders in both of its layouts, for the tests
that embedtune reads them as it does. Run with the peer venv that `npm run bench` builds from the
local wheelhouse:

    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_st_reference.py

For tiny-bert it builds, with sentence-transformers 6 itself, one folder per pooling mode
(Transformer with max_seq_length 16 → Pooling(mode) → Normalize) and saves it, and keeps the
files it wrote (modules.json, sentence_bert_config.json, 1_Pooling/config.json and
tokenizer_config.json, where version 6 keeps max_seq_length as model_max_length) under
test/fixtures/st/v6-<mode>/. It also writes an old-layout folder by hand — the
`pooling_mode_mean_tokens` flags of sentence-transformers < 6, max_seq_length 12, no Normalize —
under test/fixtures/st/legacy-mean/, and lets sentence-transformers 6 load it. For every folder,
test/fixtures/reference/st.json holds SentenceTransformer.encode's embeddings of the reference
sentences (several longer than the limits), with the versions used.
"""
import json
import shutil
import tempfile
from pathlib import Path

import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer, models

from torch_reference import FIX

MODES = ["cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]
CONFIG_FILES = ["modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "tokenizer_config.json"]
BASE = FIX / "models" / "tiny-bert"
OUT = FIX / "st"

sentences = json.load(open(FIX / "reference" / "inputs.json"))["sentences"]
torch.manual_seed(0)


def keep(folder: Path, name: str) -> None:
    for f in CONFIG_FILES:
        target = OUT / name / f
        target.parent.mkdir(parents=True, exist_ok=True)
        if (folder / f).exists():
            shutil.copy(folder / f, target)


def embed(folder: Path) -> list[list[float]]:
    model = SentenceTransformer(str(folder), device="cpu")
    model.to(torch.float64)
    return model.encode(sentences, batch_size=4, convert_to_numpy=True).astype("float64").tolist()


result = {"versions": {"sentence_transformers": sentence_transformers.__version__, "transformers": transformers.__version__, "torch": torch.__version__}, "sentences": sentences, "folders": {}}
shutil.rmtree(OUT, ignore_errors=True)
with tempfile.TemporaryDirectory() as tmp:
    for mode in MODES:
        word = models.Transformer(str(BASE), max_seq_length=16)
        pool = models.Pooling(word.get_embedding_dimension(), pooling_mode=mode)
        folder = Path(tmp) / mode
        SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu").save(str(folder))
        name = f"v6-{mode}"
        keep(folder, name)
        result["folders"][name] = {"maxSeqLength": 16, "embeddings": embed(folder)}

    legacy = Path(tmp) / "legacy"
    shutil.copytree(BASE, legacy)
    (legacy / "1_Pooling").mkdir()
    flags = {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
    (legacy / "1_Pooling" / "config.json").write_text(json.dumps(flags, indent=2) + "\n")
    (legacy / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12, "do_lower_case": False}, indent=2) + "\n")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (legacy / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    keep(legacy, "legacy-mean")
    result["folders"]["legacy-mean"] = {"maxSeqLength": 12, "embeddings": embed(legacy)}

# tokenizer_config.json: sentence-transformers 6 keeps max_seq_length there (model_max_length).
(FIX / "reference" / "st.json").write_text(json.dumps(result) + "\n")
print({k: len(v["embeddings"]) for k, v in result["folders"].items()})
