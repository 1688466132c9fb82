/**
 * bge-m3's heads read without Python: torch.save archives through a restricted pickle reader
 * (values against PyTorch's own, scripts/torch_m3_heads.py), safetensors copies, and refusals.
 */
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readM3Heads } from '../src/models/m3-heads.js';
import { readTorchStateDict } from '../src/models/torch-pickle.js';
import { torchStateDictBytes } from '../src/models/torch-save.js';
import { CRANFIELD, FIXTURES, ROOT, TINY_XLMR, tempDir } from './helpers.js';

const PK = join(FIXTURES, 'reference', 'pickles');
type Ref = Record<string, Record<string, { shape: number[]; data: number[] }>> & { colbert_bf16: Record<string, number[]>; colbert_f16: Record<string, number[]> };
const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'm3-heads.json'), 'utf8')) as Ref;
const same = (a: Float32Array, b: number[]) => a.length === b.length && b.every((x, i) => Math.fround(x) === a[i]);

/** tiny-xlmr's files with the heads beside them: a tiny model in bge-m3's layout. */
function tinyM3(): string {
  const dir = join(tempDir(), 'tiny-m3');
  cpSync(TINY_XLMR, dir, { recursive: true });
  for (const f of ['sparse_linear.pt', 'colbert_linear.pt']) copyFileSync(join(PK, f), join(dir, f));
  return dir;
}

describe('bge-m3 heads', () => {
  it('reads sparse_linear.pt and colbert_linear.pt as PyTorch saved them, bit for bit', () => {
    const heads = readM3Heads(tinyM3(), 48);
    for (const [name, head] of [['sparse_linear', heads.sparse], ['colbert_linear', heads.colbert]] as const) {
      assert.ok(head, name);
      assert.deepEqual(head.weight.shape, ref[name]!.weight!.shape);
      assert.ok(same(head.weight.data as Float32Array, ref[name]!.weight!.data), `${name} weight`);
      assert.ok(same(head.bias.data as Float32Array, ref[name]!.bias!.data), `${name} bias`);
    }
  });

  it('float16 and bfloat16 heads, and a safetensors copy (preferred when present)', () => {
    for (const [file, want] of [['colbert_f16.pt', ref.colbert_f16], ['colbert_bf16.pt', ref.colbert_bf16]] as const) {
      const t = readTorchStateDict(join(PK, file));
      assert.ok(same(t.get('weight')!.data as Float32Array, want.weight!) && same(t.get('bias')!.data as Float32Array, want.bias!), file);
    }
    const dir = tinyM3();
    copyFileSync(join(PK, 'colbert_linear.safetensors'), join(dir, 'colbert_linear.safetensors'));
    const heads = readM3Heads(dir, 48);
    assert.match(heads.colbert!.file, /colbert_linear\.safetensors$/);
    assert.ok(same(heads.colbert!.weight.data as Float32Array, ref.colbert_linear!.weight!.data));
    assert.deepEqual(readM3Heads(TINY_XLMR, 48), { sparse: undefined, colbert: undefined }, 'a model without heads');
  });

  it('refuses a pickle that calls anything else, a compressed archive, and a head of the wrong size, by name', () => {
    assert.throws(() => readTorchStateDict(join(PK, 'evil.pt')), /evil\.pt: refusing the pickled global "os\.system"/);
    assert.throws(() => readTorchStateDict(join(PK, 'deflated.pt')), /deflated\.pt: entry .* is compressed/);
    assert.throws(() => readTorchStateDict(join(TINY_XLMR, 'config.json')), /config\.json: not a zip archive/);
    assert.throws(() => readM3Heads(tinyM3(), 64), /sparse_linear\.pt: weight has shape \[1, 48\], expected \[1, 64\]/);
  });
});

describe('bge-m3 outputs: dense, sparse, ColBERT', () => {
  it('equal a float64 PyTorch reference written from the paper (vectors, lexical weights, and each mode\'s scores)', async () => {
    const { M3Encoder, colbertScore, sparseScore } = await import('../src/models/m3.js');
    type Text = { text: string; ids: number[]; dense: number[]; sparse: Record<string, number>; colbert: number[][] };
    const r = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'm3-outputs.json'), 'utf8')) as { texts: Text[]; scores: Record<'dense' | 'sparse' | 'colbert', number[][]> };
    await using m3 = await M3Encoder.load(tinyM3(), { threads: 1 });
    const out = await m3.encode(r.texts.map((t) => t.text));
    const maxDiff = (a: ArrayLike<number>, b: number[]) => b.reduce((m, x, i) => Math.max(m, Math.abs(a[i]! - x)), 0);
    r.texts.forEach((t, i) => {
      const o = out[i]!;
      assert.ok(maxDiff(o.dense, t.dense) < 1e-5, `dense ${t.text}`);
      assert.deepEqual([...o.sparse.keys()].sort((a, b) => a - b), Object.keys(t.sparse).map(Number).sort((a, b) => a - b), `sparse tokens ${t.text}`);
      for (const [id, w] of o.sparse) assert.ok(Math.abs(w - t.sparse[String(id)]!) < 1e-5, `sparse weight ${id}`);
      assert.equal(o.colbert.length, t.colbert.length * o.colbertDim, `colbert vectors ${t.text}`);
      assert.ok(maxDiff(o.colbert, t.colbert.flat()) < 1e-5, `colbert ${t.text}`);
    });
    for (let i = 0; i < out.length; i++) {
      for (let j = 0; j < out.length; j++) {
        assert.ok(Math.abs(sparseScore(out[i]!.sparse, out[j]!.sparse) - r.scores.sparse[i]![j]!) < 1e-5, `sparse ${i},${j}`);
        assert.ok(Math.abs(colbertScore(out[i]!, out[j]!) - r.scores.colbert[i]![j]!) < 1e-5, `colbert ${i},${j}`);
      }
    }
  });

  it('a folder without the heads is refused by name', async () => {
    const { M3Encoder } = await import('../src/models/m3.js');
    await assert.rejects(M3Encoder.load(TINY_XLMR), /bge-m3's heads are missing \(sparse_linear, colbert_linear/);
  });
});

describe('eval --modes (bge-m3)', () => {
  it('reports dense, sparse, colbert and hybrid; dense equals plain eval; colbert over every candidate equals brute force', async () => {
    const { evaluate } = await import('../src/jobs/evaluate.js');
    const { loadBeir } = await import('../src/data/beir.js');
    const { meanMetrics } = await import('../src/evaluation/metrics.js');
    const { M3Encoder, colbertScore } = await import('../src/models/m3.js');
    const { tiesById } = await import('../src/jobs/evaluate.js');
    const model = tinyM3();
    const common = { model, data: CRANFIELD, threads: 1, quiet: true, ks: [1, 10] };
    const r = await evaluate({ ...common, modes: ['dense', 'sparse', 'colbert', 'hybrid'], candidates: 10_000 });
    assert.deepEqual(Object.keys(r.modes!), ['dense', 'sparse', 'colbert', 'hybrid']);
    const plain = await evaluate({ ...common, pooling: 'cls' });
    for (const [k, v] of Object.entries(plain.metrics)) assert.ok(Math.abs(r.modes!.dense![k]! - v) < 1e-9, `dense ${k}`);
    assert.deepEqual(r.metrics, r.modes!.dense);
    // ColBERT brute force: every document scored, ranked by score then id.
    const set = await loadBeir(CRANFIELD);
    await using m3 = await M3Encoder.load(model, { threads: 1 });
    const qids = [...set.queries.keys()].filter((q) => set.qrels.has(q));
    const docs = await m3.encode(set.corpus.map((d) => d.text));
    const queries = await m3.encode(qids.map((q) => set.queries.get(q)!));
    const rankings = new Map(qids.map((qid, i) => [qid, tiesById(docs.map((d, j) => ({ id: set.corpus[j]!.id, score: colbertScore(queries[i]!, d) }))).slice(0, 10)]));
    const brute = meanMetrics(rankings, set.qrels, [1, 10]).metrics;
    for (const [k, v] of Object.entries(brute)) assert.ok(Math.abs(r.modes!.colbert![k]! - v) < 1e-9, `colbert ${k}: ${r.modes!.colbert![k]} vs ${v}`);
    await assert.rejects(evaluate({ ...common, modes: ['bm25' as never] }), /modes: "bm25" is not one of dense, sparse, colbert, hybrid/);
  });
});

describe('bge-m3 heads written as torch.save writes them', () => {
  for (const name of ['sparse_linear', 'colbert_linear']) {
    it(`${name}.pt: the same pickle and storages as PyTorch's file, read back bit for bit`, () => {
      const theirs = readFileSync(join(PK, `${name}.pt`));
      const tensors = readTorchStateDict(join(PK, `${name}.pt`));
      const ours = torchStateDictBytes(tensors, name);
      const file = join(tempDir(), `${name}.pt`);
      writeFileSync(file, ours);
      const back = readTorchStateDict(file);
      for (const [k, t] of tensors) {
        assert.deepEqual(back.get(k)!.shape, t.shape);
        assert.deepEqual(back.get(k)!.data, t.data, `${k} read back`);
      }
      // data.pkl and each storage, byte for byte (the archive's serialization id aside, which torch draws at random)
      const member = (zip: Uint8Array, suffix: string) => {
        // the central directory's record (the last mention of the name) gives size and local header
        const c = Buffer.from(zip).lastIndexOf(`${name}/${suffix}`) - 46;
        assert.ok(c >= 0, `${suffix} present`);
        const view = new DataView(zip.buffer, zip.byteOffset);
        const size = view.getUint32(c + 20, true);
        const local = view.getUint32(c + 42, true);
        const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
        return { bytes: Buffer.from(zip.subarray(start, start + size)), offset: start };
      };
      for (const m of ['data.pkl', 'data/0', 'data/1', 'version', 'byteorder']) assert.ok(member(ours, m).bytes.equals(member(theirs, m).bytes), `${m} differs from torch's`);
      for (const m of ['data/0', 'data/1']) assert.equal(member(ours, m).offset % 64, 0, `${m} aligned to 64 bytes as torch aligns it`);
    });
  }
});

describe('encode --modes and mine --mode (bge-m3)', () => {
  it("encode writes each text's dense_vecs, lexical_weights and colbert_vecs, equal to the PyTorch reference", async () => {
    const { encodeFile } = await import('../src/jobs/encode.js');
    type Text = { text: string; dense: number[]; sparse: Record<string, number>; colbert: number[][] };
    const r = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'm3-outputs.json'), 'utf8')) as { texts: Text[] };
    const dir = tempDir();
    const input = join(dir, 'texts.jsonl');
    writeFileSync(input, r.texts.map((t) => JSON.stringify({ text: t.text })).join('\n') + '\n');
    const model = tinyM3();
    const output = join(dir, 'out.jsonl');
    await encodeFile({ model, input, output, modes: ['dense', 'sparse', 'colbert'], threads: 1, quiet: true });
    const lines = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; dense_vecs: number[]; lexical_weights: Record<string, number>; colbert_vecs: number[][] });
    assert.equal(lines.length, r.texts.length);
    const maxDiff = (a: number[], b: number[]) => b.reduce((m, x, i) => Math.max(m, Math.abs(a[i]! - x)), 0);
    lines.forEach((l, i) => {
      const t = r.texts[i]!;
      assert.equal(l.text, t.text);
      assert.ok(maxDiff(l.dense_vecs, t.dense) < 1e-5, `dense ${t.text}`);
      assert.deepEqual(Object.keys(l.lexical_weights).sort(), Object.keys(t.sparse).sort());
      for (const [id, w] of Object.entries(l.lexical_weights)) assert.ok(Math.abs(w - t.sparse[id]!) < 1e-5);
      assert.equal(l.colbert_vecs.length, t.colbert.length);
      assert.ok(maxDiff(l.colbert_vecs.flat(), t.colbert.flat()) < 1e-5, `colbert ${t.text}`);
    });
    await assert.rejects(encodeFile({ model, input, output: join(dir, 'x.npy'), modes: ['sparse'], quiet: true }), /writes JSONL/);
    await assert.rejects(encodeFile({ model, input, output: join(dir, 'y.jsonl'), modes: ['hybrid'], quiet: true }), /hybrid is a score of a pair/);
  });

  for (const mode of ['sparse', 'hybrid'] as const) {
    it(`mine --mode ${mode}: the negatives are the pool's best-ranked non-positives by ${mode}, with its scores`, async () => {
      const { mine } = await import('../src/jobs/mine.js');
      const { M3Encoder } = await import('../src/models/m3.js');
      const { pairScore } = await import('../src/jobs/m3-rank.js');
      const dir = tempDir();
      const input = join(dir, 'in.jsonl');
      const rows = readFileSync(join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').trim().split('\n').slice(0, 6).map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
      writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const model = tinyM3();
      const output = join(dir, 'out.jsonl');
      await mine({ model, input, output, mode, candidates: 1000, rangeMin: 0, rangeMax: 10, numNegatives: 3, sampling: 'top', outputScores: true, threads: 1, quiet: true });
      const mined = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { query: string; neg: string[]; neg_scores: number[]; pos_scores: number[] });
      const pool = [...new Set(rows.flatMap((r) => [...r.pos, ...r.neg]))];
      await using m3 = await M3Encoder.load(model, { threads: 1 });
      const reps = await m3.encode(pool);
      for (const [i, r] of rows.entries()) {
        const [q] = await m3.encode([r.query]);
        const want = pool.map((text, j) => ({ text, score: Math.fround(pairScore(mode, q!, reps[j]!)) })).filter((c) => !r.pos.includes(c.text) && c.text !== r.query).sort((a, b) => b.score - a.score).slice(0, 3);
        assert.deepEqual(mined[i]!.neg, want.map((c) => c.text), `query ${i}`);
        mined[i]!.neg_scores.forEach((s, k) => assert.ok(Math.abs(s - want[k]!.score) < 1e-5, `score ${k}`));
        assert.ok(Math.abs(mined[i]!.pos_scores[0]! - pairScore(mode, q!, reps[pool.indexOf(r.pos[0]!)]!)) < 1e-5);
      }
    });
  }
});
