"""How transformers cuts a (query, passage) pair that is too long, for the rerankers' tests —
nothing of ours. Run with the peer venv that `npm run bench` builds from the local wheelhouse:

    ~/.cache/embedtune/peers/torch/bin/python scripts/torch_pair_truncation.py

For the tiny rerankers (test/fixtures/models/tiny-{bert,xlmr}-reranker) and several max lengths
(odd and even), writes test/fixtures/reference/pair-truncation.json with the ids, token type ids
and float64 logit of every pair under two rules:
- longest_first: the Rust tokenizers' LongestFirst truncation at n, what
  `tokenizer(query, passage, truncation=True, max_length=n)` runs in sentence-transformers'
  CrossEncoder;
- flag: FlagEmbedding's rerankers — the query alone cut to n·3//4 tokens, the passage to n, then
  `prepare_for_model(q, p, truncation='only_second', max_length=n)` (done on the Rust encodings:
  transformers 5 dropped prepare_for_model).
Pairs: long query with a short passage, short query with a long passage, both long.
"""
import json

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification

from torch_reference import FIX

sentences = json.load(open(FIX / "reference" / "inputs.json"))["sentences"]
long_text = " ".join(sentences)
pairs = [
    [sentences[5], "lift"],
    ["lift", sentences[5]],
    [sentences[5], sentences[3]],
    [sentences[2], sentences[4]],
    [long_text[:600], long_text[::-1][:900]],  # (whole, the Rust overflow list of the pair fills memory)
    ["what is the lift of a swept wing", long_text[:2000]],
    ["一架飞机要起飞了。" * 6, "机翼的升力"],
]

out = {"pairs": pairs, "models": {}}
for name in ["tiny-bert-reranker", "tiny-xlmr-reranker"]:
    path = FIX / "models" / name
    # The Rust tokenizer of tokenizer.json, which transformers' fast tokenizers run. (transformers 5
    # rebuilds XLMRobertaTokenizer from its vocabulary, which reads "ﬁ" otherwise.)
    rust = Tokenizer.from_file(str(path / "tokenizer.json"))
    model = AutoModelForSequenceClassification.from_pretrained(path).double().eval()
    rules = {"longest_first": {}, "flag": {}}
    for n in [17, 24, 25, 64]:
        for rule in rules:
            rows = []
            for q, p in pairs:
                if rule == "longest_first":
                    rust.enable_truncation(n, strategy="longest_first")
                    pair = rust.encode(q, p)
                    rust.no_truncation()
                    e = {"input_ids": pair.ids, "token_type_ids": pair.type_ids}
                else:
                    # transformers 5 has no prepare_for_model: its only_second step done on the
                    # Rust encodings (the passage loses tokens from its end), then the pair template.
                    qe = rust.encode(q, add_special_tokens=False)
                    qe.truncate(n * 3 // 4)
                    pe = rust.encode(p, add_special_tokens=False)
                    pe.truncate(n - rust.num_special_tokens_to_add(True) - len(qe.ids))
                    pair = rust.post_process(qe, pe, add_special_tokens=True)
                    e = {"input_ids": pair.ids, "token_type_ids": pair.type_ids}
                ids = torch.tensor([e["input_ids"]])
                types = torch.tensor([e.get("token_type_ids", [0] * len(e["input_ids"]))])
                with torch.no_grad():
                    logit = model(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids)).logits[0, 0].item()
                rows.append({"ids": e["input_ids"], "type_ids": types[0].tolist(), "logit": logit})
            rules[rule][str(n)] = rows
    out["models"][name] = rules

json.dump(out, open(FIX / "reference" / "pair-truncation.json", "w"), indent=1)
print({m: {r: len(v) for r, v in rules.items()} for m, rules in out["models"].items()})
