"""bge-m3's two heads for test/fixtures/models/tiny-xlmr, as bge-m3 ships them beside its encoder
— `sparse_linear.pt` (Linear(hidden, 1)) and `colbert_linear.pt` (Linear(hidden, hidden)), each
`torch.save(module.state_dict())` — in test/fixtures/reference/pickles/ (a test copies them beside
tiny-xlmr's files: a tiny model in bge-m3's layout), with their values for the test
(test/fixtures/reference/m3-heads.json). Also there: the ColBERT head saved in float16 and
bfloat16, a safetensors copy, a pickle that calls os.system (to be refused), and a deflated
archive (to be refused). Run with the peer venv:

    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_m3_heads.py
"""
import json
import shutil
import zipfile

import torch
from safetensors.torch import save_file

from torch_reference import FIX

torch.manual_seed(11)
hidden = json.load(open(FIX / "models" / "tiny-xlmr" / "config.json"))["hidden_size"]
sparse = torch.nn.Linear(hidden, 1)
colbert = torch.nn.Linear(hidden, hidden)
pk = FIX / "reference" / "pickles"
shutil.rmtree(pk, ignore_errors=True)
pk.mkdir(parents=True)
dst = pk
torch.save(sparse.state_dict(), dst / "sparse_linear.pt")
torch.save(colbert.state_dict(), dst / "colbert_linear.pt")
torch.save({k: v.half() for k, v in colbert.state_dict().items()}, pk / "colbert_f16.pt")
torch.save({k: v.bfloat16() for k, v in colbert.state_dict().items()}, pk / "colbert_bf16.pt")
save_file({k: v.contiguous() for k, v in colbert.state_dict().items()}, pk / "colbert_linear.safetensors")
with zipfile.ZipFile(pk / "evil.pt", "w", zipfile.ZIP_STORED) as z:
    z.writestr("evil/data.pkl", b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
with zipfile.ZipFile(pk / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as z:
    for info in zipfile.ZipFile(dst / "sparse_linear.pt").infolist():
        z.writestr(info.filename, zipfile.ZipFile(dst / "sparse_linear.pt").read(info.filename))

ref = {name: {k: {"shape": list(v.shape), "data": v.flatten().tolist()} for k, v in m.state_dict().items()} for name, m in [("sparse_linear", sparse), ("colbert_linear", colbert)]}
ref["colbert_bf16"] = {k: v.bfloat16().float().flatten().tolist() for k, v in colbert.state_dict().items()}
ref["colbert_f16"] = {k: v.half().float().flatten().tolist() for k, v in colbert.state_dict().items()}
(FIX / "reference" / "m3-heads.json").write_text(json.dumps(ref) + "\n")
print("wrote", pk)
