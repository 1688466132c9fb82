/**
 * The browser build in a real browser: Debian's chromium (playwright-core, the system browser)
 * opens `embedtune web`'s page, fine-tunes there on onnxruntime-web, and the losses, the
 * exported model and the page's chart are checked against the Node build.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { serveWeb } from '../src/jobs/web.js';
import { loadRecords } from '../src/data/records.js';
import { readConfig } from '../src/models/config.js';
import { Encoder } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadWeights } from '../src/models/weights.js';
import { resolveModelDir } from '../src/models/use-lite.js';
import { positionLimit } from '../src/models/model-config.js';
import { savedPooling } from '../src/models/st-config.js';
import { Trainer } from '../src/training/trainer.js';
import { epochBatches, scheduleSteps } from '../src/training/sampler.js';
import { Rng } from '../src/util/rng.js';
import { CRANFIELD, maxAbsDiff, ROOT, tempDir, TINY_BERT, TINY_XLMR } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const PROBE = ['what is the flutter of a swept wing', 'lift', '一架飞机要起飞了。'];

interface PageRun {
  losses: number[];
  base: Record<string, number>;
  tuned: Record<string, number>;
  files: Record<string, string>;
  probe: number[];
  stepsPerSecond: number;
  /** The download link's zip. */
  zip: string;
}

interface Settings {
  model: string;
  data: string;
  heldOut: number;
  epochs: number;
  batchSize: number;
  groupSize: number;
  learningRate: number;
  temperature: number;
  seed: number;
  device?: 'wasm' | 'webgpu';
  miniBatchSize?: number;
}

/** Runs the page's `embedtune.run`; files come back base64-encoded. */
function runInPage(page: Page, s: Settings): Promise<PageRun> {
  return page.evaluate(async ({ s, probe }) => {
    const w = window as unknown as { embedtune: { run(o: unknown): Promise<{ losses: number[]; base: Record<string, number>; tuned: Record<string, number>; files: Map<string, Uint8Array>; probe: Float32Array; stepsPerSecond: number }> } };
    const r = await w.embedtune.run({ ...s, model: `/models/${s.model}/`, data: `/data/${s.data}`, probe });
    const b64 = (bytes: Uint8Array) => {
      let text = '';
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(text);
    };
    const zip = new Uint8Array(await (await fetch((document.getElementById('download') as HTMLAnchorElement).href)).arrayBuffer());
    return { ...r, files: Object.fromEntries([...r.files].map(([k, v]) => [k, b64(v)])), probe: [...r.probe], zip: b64(zip) };
  }, { s, probe: PROBE });
}

/** The same run on the Node trainer: the page's split, sampler, schedule and options. */
async function nodeLosses(dir: string, dataFile: string, s: Settings): Promise<{ losses: number[]; stepsPerSecond: number }> {
  const { records } = await loadRecords(dataFile, { requirePositives: true });
  const train = records.slice(0, Math.round(records.length * (1 - s.heldOut)));
  const sampler = { batchSize: s.batchSize, groupSize: s.groupSize };
  const totalSteps = scheduleSteps(train, sampler, s.seed, s.epochs);
  const config = readConfig(dir);
  const tokenizer = loadTokenizer(dir);
  const maxLength = Math.min(tokenizer.modelMaxLength, positionLimit(config));
  const trainer = await Trainer.fromWeights(config, tokenizer, loadWeights(dir), {
    pooling: savedPooling(dir) ?? 'cls', normalize: true, temperature: s.temperature, learningRate: s.learningRate, weightDecay: 0.01,
    warmupSteps: Math.round(0.1 * totalSteps), totalSteps, schedule: 'linear', maxGradNorm: 1,
    maxQueryLength: Math.min(64, maxLength), maxPassageLength: Math.min(256, maxLength), threads: 1,
  });
  const losses: number[] = [];
  const started = performance.now();
  try {
    const rng = new Rng(s.seed);
    for (let e = 0; e < s.epochs; e++) for (const batch of epochBatches(train, sampler, rng)) losses.push((await trainer.step(batch)).loss);
  } finally {
    await trainer.close();
  }
  return { losses, stepsPerSecond: losses.length / ((performance.now() - started) / 1000) };
}

function writeFiles(files: Record<string, string>): string {
  const dir = join(tempDir(), 'model');
  for (const [rel, b64] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), Buffer.from(b64, 'base64'));
  }
  return dir;
}

const relDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.max(1, Math.abs(b[i]!))));

describe('fine-tuning in the browser (Chromium, onnxruntime-web)', () => {
  let browser: Browser;
  let page: Page;
  let server: Awaited<ReturnType<typeof serveWeb>>;
  let useData: string;
  let zhSmall: string;

  before(async () => {
    // USE-Lite's demo data: 30 of Cranfield's queries, their judged passages, 3 other passages each as negatives.
    const corpus = readFileSync(join(CRANFIELD, 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { _id: string; text: string });
    const qrels = new Map<string, string[]>();
    for (const line of readFileSync(join(CRANFIELD, 'qrels', 'test.tsv'), 'utf8').trim().split('\n').slice(1)) {
      const [q, d] = line.split('\t');
      qrels.set(q!, [...(qrels.get(q!) ?? []), d!]);
    }
    const text = new Map(corpus.map((d) => [d._id, d.text]));
    const rng = new Rng(7);
    useData = join(tempDir(), 'cranfield.jsonl');
    const lines = readFileSync(join(CRANFIELD, 'queries.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { _id: string; text: string })
      .filter((q) => qrels.has(q._id))
      .slice(0, 30) // 24 to train on: 3 steps of 8 (a WebAssembly step of USE-Lite takes seconds)
      .map((q) => {
        const pos = qrels.get(q._id)!.map((d) => text.get(d)).filter((t): t is string => t !== undefined);
        const neg = rng.sample(corpus.filter((d) => !qrels.get(q._id)!.includes(d._id)), 3).map((d) => d.text);
        return JSON.stringify({ query: q.text, pos_passage: pos, neg_passage: neg });
      });
    writeFileSync(useData, lines.join('\n') + '\n');
    zhSmall = join(tempDir(), 'zh-small.jsonl');
    writeFileSync(zhSmall, readFileSync(ZH, 'utf8').split('\n').slice(0, 40).join('\n') + '\n');
    server = await serveWeb({ port: 0, models: [`tiny-bert=${TINY_BERT}`, `tiny-xlmr=${TINY_XLMR}`, 'use-lite'], data: [`zh.jsonl=${ZH}`, `cranfield.jsonl=${useData}`, `zh-small.jsonl=${zhSmall}`], quiet: true });
    // WebGPU on Chromium's own software Vulkan (SwiftShader) where no GPU is: headless, it needs asking.
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'] });
    page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.waitForFunction(() => 'embedtune' in window);
    assert.deepEqual(errors, []);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  const tiny: Settings = { model: 'tiny-bert', data: 'zh.jsonl', heldOut: 0.2, epochs: 1, batchSize: 8, groupSize: 4, learningRate: 1e-3, temperature: 0.05, seed: 11 };

  it('a tiny BERT: the losses equal the Node trainer\'s step for step; the export loads in embedtune and transformers.js with the page\'s embeddings; the chart is drawn', async (t) => {
    const web = await runInPage(page, tiny);
    const { losses: node, stepsPerSecond } = await nodeLosses(TINY_BERT, ZH, tiny);
    t.diagnostic(`tiny BERT steps/s: page (WebAssembly) ${web.stepsPerSecond.toFixed(2)}, Node (1 thread) ${stepsPerSecond.toFixed(2)}`);
    assert.equal(web.losses.length, node.length);
    assert.equal(web.losses.length, 30, '240 training records, 8 per batch');
    assert.ok(relDiff(web.losses, node) < 1e-4, `losses differ by ${relDiff(web.losses, node)}: ${web.losses.slice(0, 4)} vs ${node.slice(0, 4)}`);
    assert.ok(web.losses[0] !== web.losses.at(-1), 'the weights moved');
    assert.ok(web.tuned['ndcg@10']! !== web.base['ndcg@10'], 'evaluation ran on the trained weights');

    const dir = writeFiles(web.files);
    // The download: a zip whose end record counts every file and whose entries hold them byte for byte.
    const zip = Buffer.from(web.zip, 'base64');
    const end = zip.subarray(zip.length - 22);
    assert.equal(end.readUInt32LE(0), 0x06054b50);
    assert.equal(end.readUInt16LE(10), Object.keys(web.files).length);
    const st = Buffer.from(web.files['model.safetensors']!, 'base64');
    assert.ok(zip.includes(Buffer.from('model/model.safetensors')) && zip.includes(st), 'model.safetensors stored in the zip');
    const encoder = await Encoder.load(dir);
    try {
      const ours = await encoder.encode(PROBE, { quiet: true });
      assert.ok(maxAbsDiff(ours.data, web.probe) < 1e-5, `export vs page: ${maxAbsDiff(ours.data, web.probe)}`);
      const base = await Encoder.load(TINY_BERT);
      const before = await base.encode(PROBE, { quiet: true });
      await base.close();
      assert.ok(maxAbsDiff(before.data, web.probe) > 1e-3, 'the export holds the trained weights');
    } finally {
      await encoder.close();
    }
    const { env, pipeline } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.localModelPath = dirname(dir);
    const extractor = await pipeline('feature-extraction', 'model', { local_files_only: true, dtype: 'fp32' });
    const theirs = (await extractor(PROBE, { pooling: 'cls', normalize: true })).data as Float32Array;
    await extractor.dispose();
    assert.ok(maxAbsDiff(theirs, web.probe) < 1e-4, `transformers.js vs page: ${maxAbsDiff(theirs, web.probe)}`);

    // The loss chart: the curve's blue pixels are on the canvas.
    const blue = await page.evaluate(() => {
      const c = document.getElementById('loss') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 2]! > 150 && d[i]! < 80) n++;
      return n;
    });
    assert.ok(blue > 200, `loss curve pixels: ${blue}`);
    assert.match(await page.textContent('#progress') ?? '', /step 30\/30/);
    assert.match(await page.textContent('#metrics') ?? '', /ndcg@10/);
    assert.equal(await page.getAttribute('#download', 'hidden'), null, 'the download link is shown');
    const shot = join(tempDir(), 'web.png');
    await page.screenshot({ path: shot, fullPage: true });
  });

  it('a tiny XLM-RoBERTa with GradCache (slices of 3): the same losses as the Node trainer\'s fused step', async () => {
    const s: Settings = { ...tiny, model: 'tiny-xlmr', data: 'zh-small.jsonl', miniBatchSize: 3 };
    const web = await runInPage(page, s);
    const { losses: node } = await nodeLosses(TINY_XLMR, zhSmall, s);
    assert.equal(web.losses.length, node.length);
    assert.ok(relDiff(web.losses, node) < 1e-4, `losses differ by ${relDiff(web.losses, node)}`);
  });

  it('USE-Lite on Cranfield, one epoch: the same losses as the Node trainer, and its held-out metrics', async (t) => {
    resolveModelDir('use-lite'); // converted from the npm package
    const s: Settings = { model: 'use-lite', data: 'cranfield.jsonl', heldOut: 0.2, epochs: 1, batchSize: 8, groupSize: 4, learningRate: 2e-5, temperature: 0.05, seed: 3 };
    const started = performance.now();
    const web = await runInPage(page, s);
    const pageSeconds = (performance.now() - started) / 1000;
    const { losses: node, stepsPerSecond } = await nodeLosses(resolveModelDir('use-lite'), useData, s);
    t.diagnostic(`USE-Lite steps/s: page (WebAssembly) ${web.stepsPerSecond.toFixed(3)}, Node (1 thread) ${stepsPerSecond.toFixed(3)}; the page's whole run ${pageSeconds.toFixed(1)} s`);
    assert.equal(web.losses.length, node.length);
    assert.ok(relDiff(web.losses, node) < 1e-4, `losses differ by ${relDiff(web.losses, node)}`);
    assert.ok(Number.isFinite(web.tuned['ndcg@10']));
  });

  it('WebGPU in Chromium (SwiftShader here): the same losses as the Node trainer (a failure under CI=true where there is no adapter)', async (t) => {
    const adapter = await page.evaluate(async () => {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string } } | null> } }).gpu;
      const a = await gpu?.requestAdapter();
      return a ? `${a.info?.vendor ?? '?'} ${a.info?.architecture ?? ''}`.trim() : null;
    });
    if (!adapter) {
      assert.ok(!process.env.CI, 'CI=true: Chromium gives no WebGPU adapter');
      t.skip('no WebGPU adapter in this Chromium');
      return;
    }
    t.diagnostic(`WebGPU adapter: ${adapter}`);
    // 32 training records: a few steps (a software GPU is slow).
    const s: Settings = { ...tiny, data: 'zh-small.jsonl', device: 'webgpu' };
    const web = await runInPage(page, s);
    const { losses: node } = await nodeLosses(TINY_BERT, zhSmall, s);
    t.diagnostic(`WebGPU steps/s ${web.stepsPerSecond.toFixed(3)}`);
    assert.equal(web.losses.length, node.length);
    assert.ok(relDiff(web.losses, node) < 1e-4, `losses differ by ${relDiff(web.losses, node)}: ${web.losses} vs ${node}`);
  });

  it('the server: isolation headers, the lists, 404 outside what it serves', async () => {
    const get = (path: string) => fetch(new URL(path, server.url));
    const page = await get('/');
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.deepEqual(await (await get('/api/models')).json(), ['tiny-bert', 'tiny-xlmr', 'use-lite']);
    assert.equal((await get('/models/tiny-bert/config.json')).status, 200);
    assert.equal((await get('/ort/ort.all.min.mjs')).headers.get('content-type'), 'text/javascript');
    for (const path of ['/models/tiny-bert/..%2F..%2Fpackage.json', '/models/nope/config.json', '/data/nope.jsonl', '/ort/..%2Fpackage.json']) assert.equal((await get(path)).status, 404, path);
  });

  it('a bad record is an error on the page naming the file, line and field', async () => {
    const message = await page.evaluate(async () => {
      const w = window as unknown as { embedtune: { run(o: unknown): Promise<unknown> } };
      try {
        await w.embedtune.run({ model: '/models/tiny-bert/', data: { text: '{"query": "a", "pos_passage": ["b"]}\n{"query": "c", "pos_passage": "d"}\n', name: 'mine.jsonl' } });
        return 'no error';
      } catch (e) {
        return (e as Error).message;
      }
    });
    assert.equal(message, 'mine.jsonl:2: field "pos_passage": expected a list of strings, got string');
  });
});
