/**
 * `npm run bench`: embedtune against the tools a user would otherwise pick, on this machine,
 * in one run. Every figure is a ratio of medians, ours and the peer's runs interleaved
 * (A B A B …) after a warm-up, so load on a shared machine hits both sides alike.
 * Prints a table and writes bench/results.json.
 *
 *   BENCH_REPS=5 (default)  BENCH_THREADS=2 (default)  BENCH_ONLY=encode,train,st,topk,dedup,gemm,bge-m3,qwen3,int8,devices,webgpu,inf-cl,m3
 *   BENCH_TORCH_PYTHON: the peers' Python (default: the venv bench/peers/setup.sh builds from
 *   the machine's local wheelhouse — PyTorch 2.13, sentence-transformers, faiss-cpu — else
 *   /usr/bin/python3 with Debian's packages)
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Graph } from '../src/graph/graph.js';
import * as op from '../src/graph/ops.js';
import { readConfig } from '../src/models/config.js';
import { Encoder, loadWeights } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { floatTensor, Session } from '../src/runtime/session.js';
import { greedyDedup } from '../src/search/dedup.js';
import { ExactSearch, type Vectors } from '../src/search/topk.js';
import { Trainer } from '../src/training/trainer.js';
import { EncoderPool, parseDevices } from '../src/models/encoder-pool.js';
import { Rng } from '../src/util/rng.js';
import { BGE_BASE, BGE_M3, MINILM_L6, repoRoot, unitVectors, writeRandomModel } from '../scripts/make-models.js';
import { QWEN3_06B, writeQwenModel } from '../scripts/make-qwen.js';
import { embedtuneHome } from '../src/models/use-lite.js';
import { loadBeir } from '../src/data/beir.js';
import { evaluate, evaluateSet } from '../src/jobs/evaluate.js';
import { mine as mineJob } from '../src/jobs/mine.js';
import { train as trainJob } from '../src/jobs/train.js';
import { evaluateM3 } from '../src/jobs/m3-eval.js';
import { openRun } from '../src/run.js';
import { M3Encoder } from '../src/models/m3.js';
import { encodeFile } from '../src/jobs/encode.js';

const REPS = Number(process.env.BENCH_REPS ?? 5);
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const ONLY = process.env.BENCH_ONLY?.split(',');
const WORK = join(tmpdir(), 'embedtune-bench');
mkdirSync(WORK, { recursive: true });
const PEER_PYTHON = process.env.BENCH_TORCH_PYTHON ?? [join(embedtuneHome(), 'peers', 'torch', 'bin', 'python')].find(existsSync) ?? '/usr/bin/python3';

// ---------------------------------------------------------------- the peer process

// Started on first use, so that a run of only the bge-m3 case (its own processes) needs no other peer.
let peer: ReturnType<typeof spawn> | undefined;
let replies: AsyncIterator<string>;
async function ask(cmd: Record<string, unknown>): Promise<{ seconds: number } & Record<string, number & unknown>> {
  if (!peer) {
    peer = spawn(PEER_PYTHON, [join(repoRoot, 'bench', 'peers', 'peer.py'), String(THREADS)], { stdio: ['pipe', 'pipe', 'inherit'] });
    replies = createInterface({ input: peer.stdout! })[Symbol.asyncIterator]();
  }
  peer.stdin!.write(JSON.stringify(cmd) + '\n');
  const { value, done } = await replies.next();
  if (done) throw new Error('the peer process exited; run bench/peers/setup.sh');
  const out = JSON.parse(value);
  if (out.error) throw new Error(`peer ${cmd.cmd}: ${out.error}`);
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** Runs ours and theirs alternately: warm-up once each, then `reps` pairs. */
async function interleave(ours: () => Promise<number>, theirs: () => Promise<number>, reps = REPS, warmUp = true) {
  if (warmUp) {
    await ours();
    await theirs();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < reps; i++) {
    a.push(await ours());
    b.push(await theirs());
  }
  return { ours: median(a), theirs: median(b), oursAll: a, theirsAll: b };
}

const time = async (f: () => Promise<unknown>) => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};

interface Row {
  case: string;
  ours: string;
  peer: string;
  ratio: number;
  target: string;
  met: boolean;
  detail?: Record<string, unknown>;
  /** The bench case (BENCH_ONLY name) that measured it. */
  group?: string;
}
const rows: Row[] = [];

function modelDir(name: string, spec: typeof MINILM_L6): string {
  const dir = join(WORK, name);
  if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, spec);
  return dir;
}

/** Texts that fill 128 tokens (long Cranfield abstracts). */
function longTexts(n: number): string[] {
  const docs = readFileSync(join(repoRoot, 'data', 'cranfield-full', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
  const long = docs.filter((d) => d.split(' ').length > 200);
  return Array.from({ length: n }, (_, i) => long[i % long.length]!);
}

// ---------------------------------------------------------------- 1. encode

async function benchEncode(name: string, spec: typeof MINILM_L6, n: number) {
  const dir = modelDir(name, spec);
  const texts = longTexts(n);
  const enc = await Encoder.load(dir, { pooling: 'mean', threads: THREADS });
  const ids = texts.map((t) => enc.tokenize(t, { maxLength: 128 }));
  const batches = Array.from({ length: Math.ceil(n / 32) }, (_, i) => ids.slice(i * 32, i * 32 + 32));
  const batchFile = join(WORK, `${name}-encode.json`);
  writeFileSync(batchFile, JSON.stringify(batches));
  await ask({ cmd: 'load_bert', dir });
  const r = await interleave(
    () => time(() => enc.encode(texts, { maxLength: 128, batchSize: 32, quiet: true })),
    async () => (await ask({ cmd: 'encode', batches: batchFile })).seconds,
  );
  await enc.close();
  const ratio = r.theirs! / r.ours!;
  rows.push({ case: `encode ${name} (${n} × 128 tokens, batch 32)`, ours: `${(n / r.ours!).toFixed(1)} texts/s`, peer: `PyTorch ${(n / r.theirs!).toFixed(1)} texts/s`, ratio, target: '≥ 1.2×', met: ratio >= 1.2, detail: r });
}

// ---------------------------------------------------------------- 2. train step

async function benchTrain() {
  const dir = modelDir('minilm-l6', MINILM_L6);
  const texts = longTexts(200);
  const batch = Array.from({ length: 32 }, (_, i) => ({ query: texts[i]!, passages: [0, 1, 2, 3].map((j) => texts[32 + ((i * 4 + j) % 160)]!) }));
  const trainer = await Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), {
    pooling: 'mean', normalize: true, temperature: 0.05, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 1000,
    schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 128, threads: THREADS,
  });
  const tok = loadTokenizer(dir);
  const file = join(WORK, 'train-batch.json');
  writeFileSync(file, JSON.stringify({ queries: batch.map((e) => tok.encode(e.query!, 32)), passages: batch.flatMap((e) => e.passages.map((p) => tok.encode(p!, 128))) }));
  await ask({ cmd: 'load_bert', dir });
  const r = await interleave(
    () => time(() => trainer.step(batch)),
    async () => (await ask({ cmd: 'train_step', batch: file })).seconds,
  );
  await trainer.close();
  const ratio = r.theirs! / r.ours!;
  rows.push({ case: 'train step MiniLM-L6 (32 × group 4, 32/128 tokens)', ours: `${r.ours!.toFixed(2)} s`, peer: `PyTorch ${r.theirs!.toFixed(2)} s`, ratio, target: '≥ 1.5×', met: ratio >= 1.5, detail: r });
}

// ---------------------------------------------------------------- 2b. sentence-transformers itself

/** A BEIR folder's copy with every positive judgement set to 1 (sentence-transformers' evaluator is binary). */
function binaryBeir(src: string): string {
  const dir = join(WORK, 'beir-binary');
  mkdirSync(join(dir, 'qrels'), { recursive: true });
  for (const f of ['corpus.jsonl', 'queries.jsonl']) writeFileSync(join(dir, f), readFileSync(join(src, f)));
  const [head, ...lines] = readFileSync(join(src, 'qrels', 'test.tsv'), 'utf8').trim().split('\n');
  writeFileSync(join(dir, 'qrels', 'test.tsv'), [head, ...lines.filter((l) => Number(l.split('\t')[2]) > 0).map((l) => l.split('\t').slice(0, 2).concat('1').join('\t'))].join('\n') + '\n');
  return dir;
}

async function benchSentenceTransformers() {
  const dir = modelDir('minilm-l6', MINILM_L6);
  const common = { pooling: 'mean' as const, threads: THREADS, batchSize: 32, quiet: true };
  // encode: SentenceTransformer.encode vs Encoder.encode, tokenizing included on both sides.
  const texts = longTexts(256);
  const textFile = join(WORK, 'st-texts.json');
  writeFileSync(textFile, JSON.stringify(texts));
  const enc = await Encoder.load(dir, { pooling: 'mean', threads: THREADS });
  const r = await interleave(
    () => time(() => enc.encode(texts, { maxLength: 128, batchSize: 32, quiet: true })),
    async () => (await ask({ cmd: 'st_encode', dir, texts: textFile, max_length: 128 })).seconds,
  );
  await enc.close();
  rows.push({ case: 'encode MiniLM-L6 (256 × 128 tokens) vs sentence-transformers', ours: `${(256 / r.ours!).toFixed(1)} texts/s`, peer: `SentenceTransformer.encode ${(256 / r.theirs!).toFixed(1)} texts/s`, ratio: r.theirs! / r.ours!, target: '≥ 1.2×', met: r.theirs! / r.ours! >= 1.2, detail: r });

  // eval end to end (model load included): Cranfield, 225 queries × 1,400 documents, binary qrels.
  const beir = binaryBeir(join(repoRoot, 'data', 'cranfield-full'));
  let mine: Record<string, number> = {};
  let theirs: Record<string, number> = {};
  const e = await interleave(
    () => time(async () => (mine = (await evaluate({ ...common, model: dir, data: beir, maxQueryLength: 128, maxPassageLength: 128 })).metrics)),
    async () => {
      const out = await ask({ cmd: 'st_eval', dir, beir, max_length: 128 });
      theirs = out.metrics as unknown as Record<string, number>;
      return out.seconds;
    },
    3,
    false,
  );
  const diff = Math.max(...Object.keys(theirs).map((k) => Math.abs(theirs[k]! - (mine[k] ?? NaN))));
  rows.push({ case: `eval end to end, Cranfield 225 q × 1,400 docs (metrics differ by ≤ ${diff.toExponential(1)})`, ours: `${e.ours!.toFixed(1)} s`, peer: `InformationRetrievalEvaluator ${e.theirs!.toFixed(1)} s`, ratio: e.theirs! / e.ours!, target: '≥ 1.2×, metrics agree', met: e.theirs! / e.ours! >= 1.2 && diff < 1e-3, detail: { ...e, ours: mine, theirs } });

  // mine end to end: every judged Cranfield query with its first positive, negatives ranked 10..50 among the corpus.
  const records = join(WORK, 'st-records.jsonl');
  const set = await loadBeir(join(repoRoot, 'data', 'cranfield-full'));
  const text = new Map(set.corpus.map((d) => [d.id, d.text]));
  writeFileSync(records, [...set.qrels].map(([q, rel]) => JSON.stringify({ query: set.queries.get(q), pos_passage: [text.get([...rel.keys()][0]!)] })).join('\n') + '\n');
  const corpus = join(WORK, 'st-corpus.jsonl');
  writeFileSync(corpus, set.corpus.map((d) => JSON.stringify({ text: d.text })).join('\n') + '\n');
  const m = await interleave(
    () => time(() => mineJob({ ...common, model: dir, input: records, output: join(WORK, 'st-mined.jsonl'), candidatePool: corpus, rangeMin: 10, rangeMax: 50, numNegatives: 5, maxQueryLength: 128, maxPassageLength: 128 })),
    async () => (await ask({ cmd: 'st_mine', dir, records, corpus, range_min: 10, range_max: 50, num_negatives: 5, max_length: 128 })).seconds,
    3,
    false,
  );
  rows.push({ case: 'mine end to end, 225 queries, pool 1,400, ranks 10..50, 5 negatives', ours: `${m.ours!.toFixed(1)} s`, peer: `mine_hard_negatives ${m.theirs!.toFixed(1)} s`, ratio: m.theirs! / m.ours!, target: '≥ 1.2×', met: m.theirs! / m.ours! >= 1.2, detail: m });
}

// ---------------------------------------------------------------- 3. exact top-k and 4. dedup

async function benchTopK() {
  const corpus = unitVectors(100_000, 384, 1);
  const queries = unitVectors(1000, 384, 2);
  writeFileSync(join(WORK, 'corpus.f32'), corpus.data);
  writeFileSync(join(WORK, 'queries.f32'), queries.data);
  const search = await ExactSearch.create({ threads: THREADS });
  let first: number[] = [];
  const r = await interleave(
    () => time(async () => (first = Array.from((await search.search(queries, corpus, 100, {})).indices.subarray(0, 5)))),
    async () => {
      const o = await ask({ cmd: 'faiss_topk', corpus: join(WORK, 'corpus.f32'), queries: join(WORK, 'queries.f32'), dim: 384, k: 100 });
      if (JSON.stringify(o.first) !== JSON.stringify(first)) throw new Error(`faiss and ours disagree: ${o.first} vs ${first}`);
      return o.seconds;
    },
  );
  await search.close();
  const ratio = r.theirs! / r.ours!;
  rows.push({ case: 'exact top-100, 1,000 queries × 100k × 384', ours: `${r.ours!.toFixed(3)} s`, peer: `faiss IndexFlatIP ${r.theirs!.toFixed(3)} s`, ratio, target: '≥ 1.2×', met: ratio >= 1.2, detail: r });
}

async function benchDedup() {
  // 60k distinct directions, 40k planted near-copies (cosine ≈ 0.9) spread after their originals.
  const d = 384;
  const base = unitVectors(60_000, d, 3);
  const rng = new Rng(4);
  const v: Vectors = { data: new Float32Array(100_000 * d), dim: d, count: 100_000 };
  v.data.set(base.data);
  for (let i = 60_000; i < 100_000; i++) {
    const src = rng.int(60_000);
    let s = 0;
    for (let j = 0; j < d; j++) s += (v.data[i * d + j] = base.data[src * d + j]! + 0.025 * rng.normal()) ** 2;
    for (let j = 0; j < d; j++) v.data[i * d + j]! /= Math.sqrt(s);
  }
  writeFileSync(join(WORK, 'dedup.f32'), v.data);
  // Each peer run takes a minute or two: 2 pairs, no warm-up (nothing here needs warming).
  const reps = Math.min(REPS, 2);
  let kept = 0;
  const ours = async () => time(async () => (kept = (await greedyDedup(v, 0.7, { threads: THREADS })).keep.reduce((a, b) => a + b, 0)));
  const r1 = await interleave(ours, async () => (await ask({ cmd: 'dedup_faiss', vectors: join(WORK, 'dedup.f32'), dim: d, threshold: 0.7 })).seconds, reps, false);
  const r2 = await interleave(ours, async () => (await ask({ cmd: 'community', vectors: join(WORK, 'dedup.f32'), dim: d, threshold: 0.7 })).seconds, reps, false);
  rows.push({ case: `dedup 100k × 384 at 0.7 (kept ${kept})`, ours: `${r1.ours!.toFixed(1)} s`, peer: `spec's faiss greedy loop ${r1.theirs!.toFixed(1)} s`, ratio: r1.theirs! / r1.ours!, target: '< 60 s', met: r1.ours! < 60, detail: r1 });
  rows.push({ case: 'dedup 100k (vs community_detection)', ours: `${r2.ours!.toFixed(1)} s`, peer: `PyTorch community_detection ${r2.theirs!.toFixed(1)} s`, ratio: r2.theirs! / r2.ours!, target: '< 60 s', met: r2.ours! < 60, detail: r2 });
}

// ---------------------------------------------------------------- 5. GEMM ceiling

async function benchGemm() {
  // The largest MatMuls of the MiniLM-L6 training step (128 passages × 128 tokens = 16,384 rows).
  const shapes: [number, number, number][] = [
    [16384, 384, 1536],
    [16384, 1536, 384],
    [16384, 384, 384],
    [384, 16384, 1536], // a weight gradient: xᵀ · dy
  ];
  for (const [m, k, n] of shapes) {
    const g = new Graph('gemm');
    const a = g.input('a', 'float32', [m, k]);
    const b = g.input('b', 'float32', [k, n]);
    // Only a scalar leaves the session: in a training graph MatMul outputs stay in ORT, and
    // copying a 100 MB result out (~2.5 ns/float) would dominate what we mean to measure.
    // The ReduceSum adds one pass over C (< 5% of the MatMul's time at these shapes).
    g.output(op.reduceSum(op.matmul(a, b), [0, 1], false), 'c');
    const s = await Session.create(g, { threads: THREADS });
    const rng = new Rng(5);
    const A = floatTensor(Float32Array.from({ length: m * k }, () => rng.normal()), [m, k]);
    const B = floatTensor(Float32Array.from({ length: k * n }, () => rng.normal()), [k, n]);
    const r = await interleave(
      () => time(() => s.run({ a: A, b: B })),
      async () => (await ask({ cmd: 'sgemm', m, k, n, reps: 3 })).seconds,
    );
    await s.release();
    const flops = 2 * m * k * n;
    const ratio = r.theirs! / r.ours!;
    rows.push({ case: `GEMM ${m}×${k}·${k}×${n}`, ours: `${(flops / r.ours! / 1e9).toFixed(0)} GFLOP/s`, peer: `OpenBLAS ${(flops / r.theirs! / 1e9).toFixed(0)} GFLOP/s`, ratio, target: '≥ 85% of OpenBLAS', met: ratio >= 0.85, detail: r });
  }
}

// ---------------------------------------------------------------- 6. bge-m3 at its real size

/** Runs one side of the bge-m3 case in its own process (so its peak RSS is its own); returns its JSON line. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- one JSON line from a child process
type Side = Record<string, any>;
function sideProcess(cmd: string, args: string[]): Side {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${cmd} ${args[0]}: exit ${r.status ?? r.signal} ${r.stderr.slice(-400)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

/**
 * The files both sides of a big-model case read, written under WORK with `name`: the training
 * batch (`examples` from the Chinese slice, passages repeated up to 64 tokens; the same as token
 * ids for the Python side), and `count` texts for encoding (texts and ids, ≤ 256 tokens).
 */
function bigModelInputs(dir: string, name: string, queries: number, count: number) {
  const tok = loadTokenizer(dir);
  const records = readFileSync(join(repoRoot, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const fill = (t: string, n: number) => {
    let s = t;
    while (tok.encode(s, 4 * n).length < n) s += ` ${t}`;
    return s;
  };
  const examples = records.slice(0, queries).map((r) => ({ query: r.query as string, passages: [r.pos[0], r.neg[0]].map((p: string) => fill(p, 64)) }));
  const batchFile = join(WORK, `${name}-batch.json`);
  writeFileSync(batchFile, JSON.stringify({ examples, temperature: 0.02, queryTokens: 32, passageTokens: 64, queries: examples.map((e) => tok.encode(e.query, 32)), passages: examples.flatMap((e) => e.passages.map((p) => tok.encode(p, 64))) }));
  const texts = longTexts(count);
  const [textFile, idFile] = [join(WORK, `${name}-texts.json`), join(WORK, `${name}-text-ids.json`)];
  writeFileSync(textFile, JSON.stringify(texts));
  writeFileSync(idFile, JSON.stringify(texts.map((t) => tok.encode(t, 256))));
  return { batchFile, textFile, idFile, python: PEER_PYTHON, ours: join(repoRoot, 'dist', 'bench', 'big-model-step.js') };
}

async function benchBgeM3() {
  // bge-m3's exact config with random weights: generated once (2.3 GB, ~30 s) and kept.
  const dir = join(embedtuneHome(), 'bench', 'bge-m3');
  if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, BGE_M3);
  const peerScript = join(repoRoot, 'bench', 'peers', 'xlmr_step.py');
  // Batch 2 × group 2 with 64-token passages, as in the issue's runs.
  const { batchFile, python, ours } = bigModelInputs(dir, 'bge-m3', 2, 64);

  // Encode: 64 texts of ≤ 256 tokens, batch 16; one process per side, twice, interleaved.
  const enc = { oursAll: [] as Side[], theirsAll: [] as Side[] };
  for (let i = 0; i < 2; i++) {
    enc.oursAll.push(sideProcess(process.execPath, [ours, 'encode', dir, join(WORK, 'bge-m3-texts.json'), String(THREADS)]));
    enc.theirsAll.push(sideProcess(python, [peerScript, dir, join(WORK, 'bge-m3-text-ids.json'), 'encode', String(THREADS)]));
  }
  const tps = (xs: Side[], k: string) => median(xs.map((x) => x[k] as number));
  const [oursTps, theirsTps] = [tps(enc.oursAll, 'textsPerSecond'), tps(enc.theirsAll, 'texts_per_second')];
  rows.push({ case: 'bge-m3 shape: encode 64 × ≤256 tokens, batch 16', ours: `${oursTps!.toFixed(2)} texts/s, ${tps(enc.oursAll, 'peakRssMiB')!.toFixed(0)} MiB`, peer: `PyTorch ${theirsTps!.toFixed(2)} texts/s, ${tps(enc.theirsAll, 'peak_rss_mib')!.toFixed(0)} MiB`, ratio: oursTps! / theirsTps!, target: '≥ 1×', met: oursTps! >= theirsTps!, detail: enc });

  // Train: batch 2 × group 2, 32/64 tokens, AdamW; 4 steps per process, the first not counted.
  const steps = (xs: number[]) => median(xs.slice(1));
  const runs: { ours: Side[]; torch: Side[] } = { ours: [], torch: [] };
  for (let i = 0; i < 2; i++) {
    // The run that exports does so under a 512 MiB JS heap: every export path must stream.
    runs.ours.push(sideProcess(process.execPath, [...(i === 0 ? ['--max-old-space-size=512'] : []), ours, 'train', dir, batchFile, '4', String(THREADS), JSON.stringify({ save: i === 0 })]));
    runs.torch.push(sideProcess(python, [peerScript, dir, batchFile, '4', String(THREADS)]));
  }
  const frozen = sideProcess(process.execPath, [ours, 'train', dir, batchFile, '4', String(THREADS), '{"freezeEmbeddings":true}']);
  const recompute = sideProcess(process.execPath, [ours, 'train', dir, batchFile, '4', String(THREADS), '{"recompute":true}']);
  const oursStep = median(runs.ours.map((r) => steps(r.stepSeconds)));
  const torchStep = median(runs.torch.map((r) => steps(r.step_seconds)));
  const oursRss = Math.max(...runs.ours.map((r) => r.peakRssMiB));
  const torchRss = Math.max(...runs.torch.map((r) => r.peak_rss_mib));
  const torch = `PyTorch ${runs.torch[0]!.torch}`;
  rows.push({ case: 'bge-m3 shape: train step 2 × group 2, 32/64 tokens', ours: `${oursStep!.toFixed(2)} s`, peer: `${torch} ${torchStep!.toFixed(2)} s`, ratio: torchStep! / oursStep!, target: '≥ 1×', met: torchStep! >= oursStep!, detail: runs });
  rows.push({ case: 'bge-m3 shape: train peak RSS (steps; dense AdamW)', ours: `${oursRss.toFixed(0)} MiB`, peer: `${torch} ${torchRss.toFixed(0)} MiB`, ratio: torchRss / oursRss, target: 'ours ≤ 0.8× peer', met: oursRss <= 0.8 * torchRss });
  rows.push({ case: 'bge-m3 shape: train peak RSS, freeze_embeddings', ours: `${frozen.peakRssMiB.toFixed(0)} MiB, ${steps(frozen.stepSeconds)!.toFixed(2)} s/step`, peer: `${torch} ${torchRss.toFixed(0)} MiB`, ratio: torchRss / frozen.peakRssMiB, target: 'ours ≤ 0.8× peer', met: frozen.peakRssMiB <= 0.8 * torchRss, detail: frozen });
  rows.push({ case: 'bge-m3 shape: train peak RSS, recompute (dense AdamW)', ours: `${recompute.peakRssMiB.toFixed(0)} MiB, ${steps(recompute.stepSeconds)!.toFixed(2)} s/step`, peer: `${torch} ${torchRss.toFixed(0)} MiB, ${torchStep!.toFixed(2)} s/step`, ratio: torchRss / recompute.peakRssMiB, target: 'ours ≤ 0.8× peer', met: recompute.peakRssMiB <= 0.8 * torchRss, detail: recompute });
  const saved = runs.ours[0];
  const exported = ['model.onnx', 'model.onnx_data', 'model_fp16.onnx', 'model_quantized.onnx'].every((f) => (saved!.exportFiles as string[] | undefined)?.includes(f));
  rows.push({ case: 'bge-m3 shape: checkpoint and export, every ONNX variant, 512 MiB JS heap (seconds, RSS after)', ours: `${saved!.checkpointSeconds.toFixed(1)} s + ${saved!.exportSeconds.toFixed(1)} s, ${saved!.rssAfterExportMiB} MiB`, peer: '—', ratio: NaN, target: 'exports', met: exported, detail: { files: saved!.exportFiles, heapLimitMiB: saved!.heapLimitMiB } });
  rows.push(bgeM3TrainJob(dir));
}

/**
 * The train job end to end at bge-m3's size, as a user runs it: `train` for one step (a
 * checkpoint), `train --resume` to step 2 (a second checkpoint, then the final export of every
 * ONNX variant), and `export --checkpoint` of that checkpoint into a folder of its own.
 */
function bgeM3TrainJob(dir: string): Row {
  const out = join(WORK, 'bge-m3-run');
  const exportDir = join(WORK, 'bge-m3-export');
  for (const d of [out, exportDir]) rmSync(d, { recursive: true, force: true });
  const data = join(WORK, 'bge-m3-train.jsonl');
  writeFileSync(data, readFileSync(join(repoRoot, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').split('\n').slice(0, 8).join('\n') + '\n');
  const config = join(WORK, 'bge-m3-train.json');
  writeFileSync(config, JSON.stringify({ model_name_or_path: dir, train_data: data, output_dir: out, per_device_train_batch_size: 2, group_size: 2, max_query_len: 32, max_passage_len: 64, save_steps: 1, max_steps: 1, threads: THREADS }));
  const cli = join(repoRoot, 'dist', 'src', 'cli.js');
  // Peak RSS from GNU time where the machine has it.
  const time = existsSync('/usr/bin/time') ? ['/usr/bin/time', '-f', 'peak-rss-kib %M'] : [];
  const run = (args: string[]) => {
    const s = performance.now();
    const r = spawnSync(time[0] ?? process.execPath, [...time.slice(1), ...(time.length ? [process.execPath] : []), cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`embedtune ${args.join(' ')}: exit ${r.status ?? r.signal} ${r.stderr.slice(-600)}`);
    const kib = /peak-rss-kib (\d+)/.exec(r.stderr)?.[1];
    return { seconds: (performance.now() - s) / 1000, peakRssMiB: kib ? Math.round(Number(kib) / 1024) : NaN, stderr: r.stderr };
  };
  const first = run(['train', '-c', config]);
  const resumed = run(['train', '-c', config, '--max-steps', '2', '--resume']);
  const exported = run(['export', '--checkpoint', join(out, 'checkpoint-2'), '-o', exportDir]);
  const onnx = (d: string) => (existsSync(join(d, 'onnx')) ? readdirSync(join(d, 'onnx')).sort() : []);
  const variants = ['model.onnx', 'model.onnx_data', 'model_fp16.onnx', 'model_quantized.onnx'];
  const checks = {
    checkpoint1: existsSync(join(out, 'checkpoint-1', 'state.json')),
    resumedFromStep1: /resumed from .*checkpoint-1 at step 1/.test(resumed.stderr),
    checkpoint2: existsSync(join(out, 'checkpoint-2', 'state.json')),
    finalExport: variants.every((f) => onnx(out).includes(f)),
    exportCommand: variants.every((f) => onnx(exportDir).includes(f)),
  };
  const met = Object.values(checks).every(Boolean);
  for (const d of [out, exportDir]) rmSync(d, { recursive: true, force: true });
  const fmt = (r: { seconds: number; peakRssMiB: number }) => `${r.seconds.toFixed(0)} s, ${r.peakRssMiB} MiB`;
  return {
    case: 'bge-m3 shape: train job, 1 step + checkpoint; --resume to step 2 + checkpoint + final export; export --checkpoint',
    ours: `${fmt(first)}; ${fmt(resumed)}; ${fmt(exported)}`,
    peer: '—',
    ratio: NaN,
    target: 'trains, checkpoints, resumes, exports',
    met,
    detail: { checks, first: fmt(first), resumed: fmt(resumed), exported: fmt(exported) },
  };
}

// ---------------------------------------------------------------- 7. Qwen3-Embedding-0.6B at its real size

async function benchQwen3() {
  // Qwen3-Embedding-0.6B's exact shape with random weights (2.4 GB): generated once and kept.
  const dir = join(embedtuneHome(), 'bench', 'qwen3-0.6b');
  if (!existsSync(join(dir, 'model.safetensors'))) writeQwenModel(dir, QWEN3_06B);
  const peerScript = join(repoRoot, 'bench', 'peers', 'qwen3_step.py');
  // Batch 4 × group 2, queries ≤ 32 tokens, passages 64.
  const { batchFile, textFile, idFile, python, ours } = bigModelInputs(dir, 'qwen3', 4, 48);

  const enc = { ours: sideProcess(process.execPath, [ours, 'encode', dir, textFile, String(THREADS), 'last']), theirs: sideProcess(python, [peerScript, dir, idFile, 'encode', String(THREADS)]) };
  rows.push({ case: 'Qwen3-0.6B shape: encode 48 × ≤256 tokens, batch 16', ours: `${enc.ours.textsPerSecond.toFixed(2)} texts/s, ${enc.ours.peakRssMiB} MiB`, peer: `transformers ${enc.theirs.texts_per_second.toFixed(2)} texts/s, ${enc.theirs.peak_rss_mib.toFixed(0)} MiB`, ratio: enc.ours.textsPerSecond / enc.theirs.texts_per_second, target: '≥ 1×', met: enc.ours.textsPerSecond >= enc.theirs.texts_per_second, detail: enc });

  // Train: 4 steps per process, the first not counted; full fine-tune and LoRA r=16 on q/k/v/o.
  const steps = (xs: number[]) => median(xs.slice(1));
  const lora = { rank: 16, alpha: 32, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] };
  for (const [name, extra, variant] of [['full fine-tune', { pooling: 'last' }, 'full'], ['LoRA r=16 (q/k/v/o)', { pooling: 'last', lora }, 'lora']] as const) {
    const o = sideProcess(process.execPath, [ours, 'train', dir, batchFile, '4', String(THREADS), JSON.stringify(extra)]);
    const t = sideProcess(python, [peerScript, dir, batchFile, '4', String(THREADS), variant]);
    const peer = `PyTorch ${t.torch} + transformers${variant === 'lora' ? ' + PEFT' : ''}`;
    rows.push({ case: `Qwen3-0.6B shape: train step 4 × group 2, 32/64 tokens, ${name}`, ours: `${steps(o.stepSeconds)!.toFixed(2)} s`, peer: `${peer} ${steps(t.step_seconds)!.toFixed(2)} s`, ratio: steps(t.step_seconds)! / steps(o.stepSeconds)!, target: '≥ 1×', met: steps(t.step_seconds)! >= steps(o.stepSeconds)!, detail: { ours: o, theirs: t } });
    rows.push({ case: `Qwen3-0.6B shape: train peak RSS, ${name}`, ours: `${o.peakRssMiB} MiB`, peer: `${peer} ${t.peak_rss_mib.toFixed(0)} MiB`, ratio: t.peak_rss_mib / o.peakRssMiB, target: 'ours ≤ 0.8× peer', met: o.peakRssMiB <= 0.8 * t.peak_rss_mib });
  }
}

// ---------------------------------------------------------------- int8 inference (issue 12)

/** `quantize: 'int8'` against our own float32 in the same run; quality on the real USE-Lite. */
async function benchInt8() {
  const encodeBoth = async (name: string, dir: string, texts: string[], pooling?: 'mean') => {
    const f32 = await Encoder.load(dir, { pooling, threads: THREADS });
    const int8 = await Encoder.load(dir, { pooling, threads: THREADS, quantize: 'int8' });
    const o = { maxLength: 128, quiet: true };
    const r = await interleave(() => time(() => int8.encode(texts, o)), () => time(() => f32.encode(texts, o)));
    await f32.close();
    await int8.close();
    const n = texts.length;
    rows.push({ case: `encode ${name}, ${n} × ≤128 tokens: int8 vs float32`, ours: `int8 ${(n / r.ours!).toFixed(1)} texts/s`, peer: `float32 ${(n / r.theirs!).toFixed(1)} texts/s`, ratio: r.theirs! / r.ours!, target: '≥ 2×', met: r.theirs! / r.ours! >= 2, detail: r });
  };
  await encodeBoth('MiniLM-L6', modelDir('minilm-l6', MINILM_L6), longTexts(256), 'mean');
  await encodeBoth('bge-base', modelDir('bge-base', BGE_BASE), longTexts(96), 'mean');
  await encodeBoth('USE-Lite', 'use-lite', longTexts(256));
  const data = join(repoRoot, 'data', 'cranfield-full');
  const ndcg = async (quantize?: 'int8') => (await evaluate({ model: 'use-lite', data, threads: THREADS, quiet: true, quantize })).metrics['ndcg@10']!;
  const [f32, int8] = [await ndcg(), await ndcg('int8')];
  rows.push({ case: 'USE-Lite nDCG@10 on Cranfield (225 q × 1,400 docs): int8 vs float32', ours: `int8 ${int8.toFixed(4)}`, peer: `float32 ${f32.toFixed(4)}`, ratio: int8 / f32, target: '|Δ| ≤ 0.005', met: Math.abs(int8 - f32) <= 0.005, detail: { f32, int8 } });
}

// ---------------------------------------------------------------- several devices, shards (issue 12)

/**
 * Encode 4,096 texts (4 planning blocks) with MiniLM-L6 three ways on the same cores: one
 * process of THREADS threads; `--devices cpu:THREADSx1` (worker threads); and THREADS shards of
 * one thread run as concurrent processes, then `embedtune merge`. All three write the same bytes.
 */
async function benchDevices() {
  const dir = modelDir('minilm-l6', MINILM_L6);
  const docs = readFileSync(join(repoRoot, 'data', 'cranfield-full', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l).text as string).split(/\s+/).join(' ')).filter(Boolean);
  const input = join(WORK, 'devices-texts.txt');
  writeFileSync(input, Array.from({ length: 4096 }, (_, i) => `${docs[i % docs.length]} (${i})`).join('\n') + '\n');
  const cli = join(repoRoot, 'dist', 'src', 'cli.js');
  const base = ['encode', '-m', dir, '-i', input, '--pooling', 'mean', '--max-length', '128', '-q'];
  const exec = (args: string[]) => new Promise<void>((resolve, reject) => {
    const c = spawn(process.execPath, [cli, ...args], { stdio: 'inherit' });
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`embedtune ${args.join(' ')} exited ${code}`))));
  });
  const out = (name: string) => join(WORK, `devices-${name}.npy`);
  const one = await time(() => exec([...base, '-o', out('one'), '--threads', String(THREADS)]));
  const pool = await time(() => exec([...base, '-o', out('pool'), '--devices', `cpu:${THREADS}x1`]));
  const shards = join(WORK, 'devices-shards');
  rmSync(shards, { recursive: true, force: true });
  const sharded = await time(async () => {
    await Promise.all(Array.from({ length: THREADS }, (_, i) => exec([...base, '-o', out('sharded'), '--threads', '1', '--shard', `${i}/${THREADS}`, '--shard-dir', shards])));
    await exec(['merge', shards, '-q']);
  });
  const same = [out('pool'), out('sharded')].every((f) => readFileSync(f).equals(readFileSync(out('one'))));
  rows.push({ case: `encode 4,096 × ≤128 tokens MiniLM-L6: --devices cpu:${THREADS}x1 vs 1 × ${THREADS} threads (same bytes: ${same})`, ours: `${pool.toFixed(1)} s`, peer: `one process ${one.toFixed(1)} s`, ratio: one / pool, target: 'same bytes', met: same, detail: { one, pool } });
  rows.push({ case: `encode 4,096 × ≤128 tokens MiniLM-L6: ${THREADS} shards × 1 thread + merge vs 1 × ${THREADS} threads (same bytes: ${same})`, ours: `${sharded.toFixed(1)} s`, peer: `one process ${one.toFixed(1)} s`, ratio: one / sharded, target: 'same bytes', met: same, detail: { one, sharded } });

  // mine: 225 Cranfield queries against its 1,400-passage corpus (2 planning blocks), ranks 10..50.
  const set = await loadBeir(join(repoRoot, 'data', 'cranfield-full'));
  const text = new Map(set.corpus.map((doc) => [doc.id, doc.text]));
  const records = join(WORK, 'devices-records.jsonl');
  writeFileSync(records, [...set.qrels].map(([q, rel]) => JSON.stringify({ query: set.queries.get(q), pos_passage: [text.get([...rel.keys()][0]!)] })).join('\n') + '\n');
  const corpus = join(WORK, 'devices-corpus.jsonl');
  writeFileSync(corpus, set.corpus.map((doc) => JSON.stringify({ text: doc.text })).join('\n') + '\n');
  const mined = (name: string) => join(WORK, `devices-mined-${name}.jsonl`);
  const mineArgs = ['mine', '-m', dir, '-i', records, '--candidate-pool', corpus, '--pooling', 'mean', '--range-min', '10', '--range-max', '50', '--num-negatives', '5', '--max-query-length', '128', '--max-passage-length', '128', '-q'];
  const mineOne = await time(() => exec([...mineArgs, '-o', mined('one'), '--threads', String(THREADS)]));
  const mineShards = join(WORK, 'devices-mine-shards');
  rmSync(mineShards, { recursive: true, force: true });
  const mineSharded = await time(async () => {
    await Promise.all(Array.from({ length: THREADS }, (_, i) => exec([...mineArgs, '-o', mined('sharded'), '--threads', '1', '--shard', `${i}/${THREADS}`, '--shard-dir', mineShards])));
    await exec(['merge', mineShards, '-q']);
  });
  const sameMined = readFileSync(mined('sharded')).equals(readFileSync(mined('one')));
  rows.push({ case: `mine 225 queries × pool 1,400 MiniLM-L6: ${THREADS} shards × 1 thread + merge vs 1 × ${THREADS} threads (same bytes: ${sameMined})`, ours: `${mineSharded.toFixed(1)} s`, peer: `one process ${mineOne.toFixed(1)} s`, ratio: mineOne / mineSharded, target: 'same bytes', met: sameMined, detail: { one: mineOne, sharded: mineSharded } });

  // The jobs' default, the model in one worker thread, against the session on the main thread:
  // Cranfield's 1,400 passages encoded by each, loaded once, interleaved.
  const passages = set.corpus.map((doc) => doc.text);
  const here = await Encoder.load(dir, { pooling: 'mean', threads: THREADS });
  const thread = await EncoderPool.load(dir, { pooling: 'mean', threads: THREADS, devices: [{ device: 'cpu', threads: THREADS }] });
  const w = await interleave(() => time(() => thread.encode(passages, { quiet: true, maxLength: 128 })), () => time(() => here.encode(passages, { quiet: true, maxLength: 128 })));
  await Promise.all([here.close(), thread.close()]);
  rows.push({ case: 'encode Cranfield 1,400 passages MiniLM-L6: in a worker thread (the jobs\' default) vs on the main thread', ours: `${w.ours!.toFixed(1)} s`, peer: `main thread ${w.theirs!.toFixed(1)} s`, ratio: w.theirs! / w.ours!, target: '≥ 0.95×', met: w.theirs! / w.ours! >= 0.95, detail: w });

  // Data-parallel training: the bench's train-step batch (32 × group 4) on THREADS workers of one
  // thread (cross-device negatives: the same loss) vs one trainer of THREADS threads.
  const texts = longTexts(200);
  const batch = Array.from({ length: 32 }, (_, i) => ({ query: texts[i]!, passages: [0, 1, 2, 3].map((j) => texts[32 + ((i * 4 + j) % 160)]!) }));
  const o = { pooling: 'mean' as const, normalize: true, temperature: 0.05, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 1000, schedule: 'constant' as const, maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 128 };
  const single = await Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), { ...o, threads: THREADS });
  const parallel = await Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), { ...o, devices: parseDevices(`cpu:${THREADS}x1`) });
  const losses: number[][] = [[], []];
  const r = await interleave(
    () => time(async () => losses[1]!.push((await parallel.step(batch)).loss)),
    () => time(async () => losses[0]!.push((await single.step(batch)).loss)),
  );
  await Promise.all([single.close(), parallel.close()]);
  const sameLoss = losses[0]!.every((l, i) => Math.abs(l - losses[1]![i]!) <= 1e-4 * l);
  rows.push({ case: `train step MiniLM-L6 (32 × group 4): --devices cpu:${THREADS}x1 vs 1 × ${THREADS} threads (same losses: ${sameLoss})`, ours: `${r.ours!.toFixed(2)} s`, peer: `one trainer ${r.theirs!.toFixed(2)} s`, ratio: r.theirs! / r.ours!, target: 'same losses', met: sameLoss, detail: { ...r, losses } });
}

// ---------------------------------------------------------------- WebGPU (issue 21)

/**
 * scripts/device-check.ts on WebGPU (lavapipe on a machine without a GPU: a software GPU, so this
 * measures parity, placement and bytes moved, not speed): MiniLM-L6 and bge-base shapes, a
 * training step of 2 queries × group 4 at 32/128 tokens.
 */
async function benchWebgpu() {
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist', 'scripts', 'device-check.js'), 'webgpu', '--shapes', 'minilm,bge-base', '--batch', '2', '--steps', '3'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const out = JSON.parse(r.stdout);
  if (out.error) throw new Error(`device-check: ${out.error}`);
  const enc = Math.max(...(Object.values(out.parity.encodeMaxAbsDiff) as number[]));
  const loss = Math.max(...Object.values(out.parity.training as Record<string, { maxRelDiff: number }>).map((t) => t.maxRelDiff));
  rows.push({ case: 'WebGPU vs CPU: encode (5 architectures), 3 training steps (fused, GradCache, recompute)', ours: `encode ≤ ${enc.toExponential(1)}, losses ≤ ${loss.toExponential(1)} rel.`, peer: 'CPU', ratio: NaN, target: '≤ 1e-5', met: out.parity.ok, detail: out.parity });
  const placed = out.placement as { graph: string; cpuCompute: Record<string, number>; deviceFlopsShare: number }[];
  const off = placed.filter((p) => Object.keys(p.cpuCompute).length);
  rows.push({ case: `WebGPU placement: compute nodes on the CPU, ${placed.length} graphs`, ours: off.length ? off.map((p) => `${p.graph}: ${Object.keys(p.cpuCompute).join(', ')}`).join('; ') : 'none', peer: '—', ratio: NaN, target: 'none', met: off.length === 0, detail: { graphs: placed } });
  const bytes: number[] = [];
  for (const [shape, m] of Object.entries(out.shapes as Record<string, { device: Measured; deviceHostState: Measured; cpu: Measured }>)) {
    const [dev, host] = [m.device.bytesPerStep, m.deviceHostState.bytesPerStep];
    bytes.push(dev.toDevice + dev.fromDevice);
    rows.push({ case: `WebGPU ${shape} shape (${(m.device.params / 1e6).toFixed(1)}M params): host↔device bytes per training step, state on the device vs host state`, ours: `${dev.toDevice} up, ${dev.fromDevice} down`, peer: `host state ${(host.toDevice / 1e6).toFixed(1)} MB up, ${(host.fromDevice / 1e6).toFixed(1)} MB down`, ratio: (host.toDevice + host.fromDevice) / (dev.toDevice + dev.fromDevice), target: 'independent of the parameter count', met: bytes.every((b) => b === bytes[0]), detail: m });
    rows.push({ case: `WebGPU ${shape} shape: step time and peak RSS on lavapipe (a software GPU: not a speed measure)`, ours: `${m.device.stepSeconds.toFixed(1)} s, ${m.device.peakRssMiB} MiB`, peer: `CPU ${m.cpu.stepSeconds.toFixed(2)} s, ${m.cpu.peakRssMiB} MiB`, ratio: m.cpu.stepSeconds / m.device.stepSeconds, target: 'recorded', met: true });
  }
}
interface Measured {
  params: number;
  stepSeconds: number;
  peakRssMiB: number;
  bytesPerStep: { toDevice: number; fromDevice: number };
}

// ---------------------------------------------------------------- inf_cl (issue 23)

/**
 * loss_type inf_cl vs contrastive. (1) The loss and its gradient alone, B queries × 8 passages,
 * 384 wide, one process per point (scripts/infcl-memory.ts): peak RSS at B = 512 … 4,096, and the
 * batch where each would reach 8 GB, extrapolated from the points (dense: a + b·B², tiled: a + b·B
 * — the fits are printed with their worst residual). (2) A training step of the MiniLM-L6 shape,
 * 32 queries × group 8 at 32/128 tokens (GradCache slices of 32 for both), per 1,000 pairs.
 */
async function benchInfCl() {
  const point = (kind: string, b: number) => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'dist', 'scripts', 'infcl-memory.js'), kind, String(b)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`infcl-memory ${kind} ${b}: ${r.stderr}`);
    return JSON.parse(r.stdout) as { peakRssMiB: number; seconds: number; loss: number };
  };
  const sizes = [512, 1024, 2048, 4096];
  const measured: Record<string, { b: number; peakRssMiB: number; seconds: number }[]> = { dense: [], tiled: [] };
  for (const b of sizes) for (const kind of ['dense', 'tiled']) measured[kind]!.push({ b, ...point(kind, b) });
  // Least squares of rss = a + c·f(B) with f(B) = B² (dense) or B (tiled); the batch at 8 GiB.
  const fit = (pts: { b: number; peakRssMiB: number }[], f: (b: number) => number) => {
    const xs = pts.map((p) => f(p.b));
    const ys = pts.map((p) => p.peakRssMiB);
    const mx = xs.reduce((a, x) => a + x, 0) / xs.length;
    const my = ys.reduce((a, y) => a + y, 0) / ys.length;
    const c = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
    const a = my - c * mx;
    return { a, c, worstResidualMiB: Math.max(...xs.map((x, i) => Math.abs(a + c * x - ys[i]!))) };
  };
  const dense = fit(measured.dense!, (b) => b * b);
  const tiled = fit(measured.tiled!, (b) => b);
  const ceiling = { dense: Math.sqrt((8192 - dense.a) / dense.c), tiled: (8192 - tiled.a) / tiled.c };
  const at = (kind: string, b: number) => measured[kind]!.find((m) => m.b === b)!;
  rows.push({
    case: `InfoNCE loss + gradient alone, B queries × 8 passages × 384: peak RSS at B = ${sizes.join(', ')}; batch reaching 8 GiB (extrapolated)`,
    ours: `inf_cl ${measured.tiled!.map((m) => m.peakRssMiB.toFixed(0)).join(' / ')} MiB; ~${Math.round(ceiling.tiled).toLocaleString('en')} queries`,
    peer: `contrastive ${measured.dense!.map((m) => m.peakRssMiB.toFixed(0)).join(' / ')} MiB; ~${Math.round(ceiling.dense).toLocaleString('en')} queries`,
    ratio: ceiling.tiled / ceiling.dense, target: 'inf_cl linear in B', met: tiled.worstResidualMiB < 0.1 * at('tiled', 4096).peakRssMiB, detail: { measured, dense, tiled, ceiling },
  });
  rows.push({ case: 'InfoNCE loss + gradient alone at B = 4,096 (32,768 passages): time', ours: `inf_cl ${at('tiled', 4096).seconds.toFixed(1)} s`, peer: `contrastive ${at('dense', 4096).seconds.toFixed(1)} s`, ratio: at('dense', 4096).seconds / at('tiled', 4096).seconds, target: 'recorded', met: true });

  const dir = modelDir('minilm-l6', MINILM_L6);
  const texts = longTexts(300);
  const batch = Array.from({ length: 32 }, (_, i) => ({ query: texts[i]!, passages: Array.from({ length: 8 }, (_, j) => texts[32 + ((i * 8 + j) % 256)]!) }));
  const trainerFor = (infCl: boolean) => Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), {
    pooling: 'mean', normalize: true, temperature: 0.05, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 1000,
    schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 128, threads: THREADS, miniBatchSize: 32,
    ...(infCl ? { infCl: { scale: 1 / 0.05 } } : {}),
  });
  const [withDense, withTiled] = [await trainerFor(false), await trainerFor(true)];
  const r = await interleave(() => time(() => withTiled.step(batch)), () => time(() => withDense.step(batch)));
  await withDense.close();
  await withTiled.close();
  const pairs = 32 * 8;
  rows.push({ case: 'train step MiniLM-L6 shape, 32 × group 8, 32/128 tokens, GradCache slices of 32: per 1,000 pairs', ours: `inf_cl ${((1000 * r.ours!) / pairs).toFixed(2)} s`, peer: `contrastive ${((1000 * r.theirs!) / pairs).toFixed(2)} s`, ratio: r.theirs! / r.ours!, target: 'recorded', met: true, detail: r });
}

// ---------------------------------------------------------------- bge-m3's three outputs (issue 24)

/** A small XLM-R (6 × 384) with random weights and no heads: unified fine-tuning makes them. */
const XLMR_SMALL = { architecture: 'xlm-roberta' as const, hidden: 384, layers: 6, heads: 12, intermediate: 1536, maxLength: 512, seed: 8 };

/**
 * (1) bge-m3 shape: a unified step (dense + sparse + ColBERT, self-distillation) against a
 * dense-only one, 2 × group 2 at 32/64 tokens, each side its own process (3 steps; time is the
 * mean of steps 2–3, RSS the peak). (2) A small XLM-R with random weights fine-tuned on Cranfield's
 * even queries (10 epochs, batch 16 × group 4, negatives drawn at random, seed 1), unified and
 * dense-only; nDCG@10 on the odd queries for each of bge-m3's modes.
 */
async function benchM3() {
  const dir = join(embedtuneHome(), 'bench', 'bge-m3');
  if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, BGE_M3);
  const { batchFile, ours } = bigModelInputs(dir, 'bge-m3', 2, 64);
  const side = (extra: object) => sideProcess(process.execPath, [ours, 'train', dir, batchFile, '3', String(THREADS), JSON.stringify(extra)]);
  const later = (x: Side) => (x.stepSeconds as number[]).slice(1).reduce((a, b) => a + b, 0) / ((x.stepSeconds as number[]).length - 1);
  const [dense, unified, unifiedRecompute] = [side({}), side({ unified: true }), side({ unified: true, recompute: true })];
  rows.push({ case: 'bge-m3 shape: unified step (dense + sparse + ColBERT, self-distill), 2 × group 2, 32/64 tokens', ours: `${later(unified).toFixed(2)} s, ${unified.peakRssMiB} MiB`, peer: `dense-only ${later(dense).toFixed(2)} s, ${dense.peakRssMiB} MiB`, ratio: later(dense) / later(unified), target: 'recorded', met: true, detail: { dense, unified } });
  rows.push({ case: 'bge-m3 shape: unified step with recompute', ours: `${later(unifiedRecompute).toFixed(2)} s, ${unifiedRecompute.peakRssMiB} MiB`, peer: `unified ${later(unified).toFixed(2)} s, ${unified.peakRssMiB} MiB`, ratio: later(unified) / later(unifiedRecompute), target: 'less memory', met: unifiedRecompute.peakRssMiB < unified.peakRssMiB, detail: unifiedRecompute });

  const small = modelDir('xlmr-small', XLMR_SMALL);
  const beir = await loadBeir(join(repoRoot, 'data', 'cranfield-full'));
  const text = new Map(beir.corpus.map((d) => [d.id, d.text]));
  const judged = [...beir.queries.keys()].filter((id) => beir.qrels.get(id)?.size);
  const [trainIds, testIds] = [judged.filter((_, i) => i % 2 === 0), judged.filter((_, i) => i % 2 === 1)];
  const rng = new Rng(1);
  const records = trainIds.map((id) => {
    const relevant = beir.qrels.get(id)!;
    const neg: string[] = [];
    while (neg.length < 3) {
      const d = beir.corpus[rng.int(beir.corpus.length)]!;
      if (!relevant.has(d.id)) neg.push(d.text);
    }
    return { query: beir.queries.get(id)!, pos: [...relevant.keys()].map((d) => text.get(d)).filter((t): t is string => !!t), neg };
  });
  const set = { queries: new Map(testIds.map((id) => [id, beir.queries.get(id)!])), corpus: beir.corpus, qrels: new Map(testIds.map((id) => [id, beir.qrels.get(id)!])) };
  const ndcg: Record<string, Record<string, number>> = {};
  for (const u of [false, true]) {
    const out = join(WORK, `m3-${u ? 'unified' : 'dense'}`);
    rmSync(out, { recursive: true, force: true });
    const t0 = performance.now();
    await trainJob({ model_name_or_path: small, output_dir: out, train_data: records, per_device_train_batch_size: 16, group_size: 4, max_query_len: 32, max_passage_len: 128, learning_rate: 1e-4, warmup_ratio: 0.1, num_train_epochs: 10, embedding_temperature: 0.02, unified_finetuning: u, use_self_distill: u, threads: THREADS, save_steps: 100000, logging_steps: 1000, seed: 1 }, { quiet: true });
    const seconds = (performance.now() - t0) / 1000;
    // dense for both (a dense-only fine-tune of a folder without heads has none); the other modes for the unified one
    await using enc = await Encoder.load(out, { threads: THREADS });
    const row: Record<string, number> = { dense: (await evaluateSet({ model: enc, quiet: true, maxQueryLength: 32, maxPassageLength: 128 }, set, [10])).metrics['ndcg@10']!, trainSeconds: seconds };
    if (u) {
      await using run = openRun({ quiet: true });
      const r = await evaluateM3({ model: out, modes: ['sparse', 'colbert', 'hybrid'], maxQueryLength: 32, maxPassageLength: 128, threads: THREADS }, set, [10], run);
      for (const [mode, t] of Object.entries(r.byMode)) row[mode] = t['ndcg@10']!;
    }
    ndcg[u ? 'unified' : 'dense-only'] = row;
  }
  // How many tokens of a text the trained sparse head still weighs (a random encoder's token states
  // are nearly parallel, so its new sparse head starts with few live tokens and can lose them all).
  await using m3 = await M3Encoder.load(join(WORK, 'm3-unified'), { threads: THREADS });
  const sparseAlive = (await m3.encode(beir.corpus.slice(0, 32).map((d) => d.text), { maxLength: 128 })).reduce((n, r) => n + r.sparse.size, 0) / 32;
  // The export as FlagEmbedding's BGEM3FlagModel loads it (torch.load, weights_only, into nn.Linear): equal outputs?
  const texts = join(WORK, 'm3-texts.jsonl');
  writeFileSync(texts, [...[...set.queries.values()].slice(0, 8), ...beir.corpus.slice(0, 8).map((d) => d.text)].map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  await encodeFile({ model: join(WORK, 'm3-unified'), input: texts, output: join(WORK, 'm3-ours.jsonl'), modes: ['dense', 'sparse', 'colbert'], maxLength: 128, threads: THREADS, quiet: true });
  const check = sideProcess(PEER_PYTHON, [join(repoRoot, 'scripts', 'torch_m3_export_check.py'), join(WORK, 'm3-unified'), join(WORK, 'm3-ours.jsonl'), '128']);
  rows.push({ case: 'unified export loaded as BGEM3FlagModel loads it (transformers + torch.load weights_only): 16 texts, max |Δ|', ours: `dense ${check.dense.toExponential(1)}, sparse ${check.sparse.toExponential(1)}, ColBERT ${check.colbert.toExponential(1)}`, peer: 'PyTorch', ratio: NaN, target: '≤ 1e-4, same tokens', met: check.ok, detail: check });
  const un = ndcg.unified!;
  const f = (x: number | undefined) => x!.toFixed(4);
  rows.push({
    case: `Cranfield, small XLM-R (6 × 384, random init), 10 epochs on ${trainIds.length} queries: nDCG@10 on the other ${testIds.length}`,
    ours: `unified: hybrid ${f(un.hybrid)}, dense ${f(un.dense)}, sparse ${f(un.sparse)} (${sparseAlive.toFixed(1)} weighted tokens/text), ColBERT ${f(un.colbert)} (${un.trainSeconds!.toFixed(0)} s)`,
    peer: `dense-only fine-tune: dense ${f(ndcg['dense-only']!.dense)} (${ndcg['dense-only']!.trainSeconds!.toFixed(0)} s)`,
    ratio: un.hybrid! / ndcg['dense-only']!.dense!, target: 'recorded', met: true, detail: { ...ndcg, sparseTokensPerText: sparseAlive },
  });
}

// ---------------------------------------------------------------- main

const cases: Record<string, () => Promise<void>> = {
  encode: async () => {
    await benchEncode('minilm-l6', MINILM_L6, 256);
    await benchEncode('bge-base', BGE_BASE, 96);
  },
  train: benchTrain,
  st: benchSentenceTransformers,
  topk: benchTopK,
  dedup: benchDedup,
  gemm: benchGemm,
  'bge-m3': benchBgeM3,
  qwen3: benchQwen3,
  int8: benchInt8,
  devices: benchDevices,
  webgpu: benchWebgpu,
  'inf-cl': benchInfCl,
  m3: benchM3,
};
const peers = await ask({ cmd: 'versions' });
process.stderr.write(`bench: peers ${PEER_PYTHON}: ${Object.entries(peers).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
for (const [name, run] of Object.entries(cases)) {
  if (ONLY && !ONLY.includes(name)) continue;
  process.stderr.write(`bench: ${name}…\n`);
  const from = rows.length;
  await run();
  for (const r of rows.slice(from)) r.group = name;
}
const peerRss = peer ? (await ask({ cmd: 'rss' })).peak_rss_mib : NaN;
peer?.stdin!.end();
const oursRss = process.resourceUsage().maxRSS / 1024;
const table = [['case', 'ours', 'peer', 'ratio (peer time / ours)', 'target', 'met'], ...rows.map((r) => [r.case, r.ours, r.peer, `${r.ratio.toFixed(2)}×`, r.target, r.met ? 'yes' : 'NO'])];
const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
console.log(table.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')).join('\n'));
console.log(`peers: ${Object.entries(peers).map(([k, v]) => `${k} ${v}`).join(', ')}`);
console.log(`peak RSS: ours ${oursRss.toFixed(0)} MiB, peers ${Number(peerRss).toFixed(0)} MiB; ${REPS} interleaved repetitions after warm-up, ${THREADS} threads`);
// A partial run (BENCH_ONLY) replaces its cases' rows in results.json and keeps the others.
const resultsPath = join(repoRoot, 'bench', 'results.json');
const previous = ONLY && existsSync(resultsPath) ? ((JSON.parse(readFileSync(resultsPath, 'utf8')).rows ?? []) as Row[]).filter((r) => r.group && !ONLY.includes(r.group)) : [];
writeFileSync(resultsPath, JSON.stringify({ date: new Date().toISOString(), reps: REPS, threads: THREADS, peers, peakRssMiB: { ours: oursRss, peers: peerRss }, rows: [...previous, ...rows] }, null, 2) + '\n');
