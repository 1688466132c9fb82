/**
 * What trains in a browser tab (issue 25): random BERT models of real shapes, fine-tuned in
 * Debian's chromium on onnxruntime-web (WebAssembly, one thread per core) and on the Node trainer
 * (same cores), batch × group 4 at 32 / 128 tokens: seconds per step, the tab's peak memory
 * (its renderer processes' RSS, sampled), or the error that stopped it. `@n`: the page runs
 * GradCache slices of n texts (Node: its fused step either way). Prints JSON.
 *
 *   node dist/scripts/browser-limits.js [minilm:8,32 minilm:32@8 bge-base:8@8 …]
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { serveWeb } from '../src/jobs/web.js';
import { readConfig } from '../src/models/config.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadWeights } from '../src/models/weights.js';
import { Trainer } from '../src/training/trainer.js';
import { BGE_BASE, MINILM_L6, type RandomModelSpec, repoRoot, writeRandomModel } from './make-models.js';

const BERT_LARGE: RandomModelSpec = { architecture: 'bert', hidden: 1024, layers: 24, heads: 16, intermediate: 4096, maxLength: 512, vocabSize: 30522, seed: 9 };
const SHAPES: Record<string, RandomModelSpec> = { minilm: MINILM_L6, 'bge-base': BGE_BASE, 'bert-large': BERT_LARGE };
const GROUP = 4;
const STEPS = 2; // the first warms up; the second is timed
const work = join(tmpdir(), 'embedtune-bench', 'browser');
const threads = availableParallelism();

/** Records whose texts fill 32 / 128 tokens: long Cranfield abstracts. */
function records(n: number): string {
  const docs = readFileSync(join(repoRoot, 'data', 'cranfield-full', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string).filter((d) => d.split(' ').length > 200);
  return Array.from({ length: n }, (_, i) => JSON.stringify({ query: docs[i % docs.length]!, pos_passage: [docs[(i + 1) % docs.length]!], neg_passage: [1, 2, 3].map((k) => docs[(i + 1 + k) % docs.length]!) })).join('\n') + '\n';
}

/** The largest RSS sum of chromium's renderer processes seen while `f` runs, in MiB. */
async function peakRenderer<T>(f: () => Promise<T>): Promise<{ value?: T; error?: string; peakMiB: number }> {
  let peak = 0;
  const sample = () => {
    try {
      const out = execSync("ps -C chromium -o rss=,args= | grep -- '--type=renderer' | awk '{s+=$1} END {print s}'", { encoding: 'utf8' });
      peak = Math.max(peak, Number(out.trim() || 0) / 1024);
    } catch {
      /* no renderer at this instant */
    }
  };
  const timer = setInterval(sample, 250);
  try {
    return { value: await f(), peakMiB: Math.round(peak) };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0]!.slice(0, 300), peakMiB: Math.round(peak) };
  } finally {
    clearInterval(timer);
  }
}

async function nodeStep(dir: string, batch: number, data: string): Promise<number> {
  const trainer = await Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), {
    pooling: 'cls', normalize: true, temperature: 0.02, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 10, schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 128, threads,
  });
  try {
    const lines = data.trim().split('\n').slice(0, batch).map((l) => JSON.parse(l) as { query: string; pos_passage: string[]; neg_passage: string[] });
    const examples = lines.map((r) => ({ query: r.query, passages: [...r.pos_passage, ...r.neg_passage] }));
    let seconds = 0;
    for (let s = 0; s < STEPS; s++) {
      const t0 = performance.now();
      await trainer.step(examples);
      seconds = (performance.now() - t0) / 1000;
    }
    return seconds;
  } finally {
    await trainer.close();
  }
}

const plan = (process.argv.slice(2).length ? process.argv.slice(2) : ['minilm:8,32', 'minilm:32,128@8', 'bge-base:8,32@8', 'bert-large:8@8']).map((p) => {
  const [spec, mini] = p.split('@');
  const [name, batches] = spec!.split(':');
  return { name: name!, batches: (batches ?? '8').split(',').map(Number), mini: mini ? Number(mini) : undefined };
});
mkdirSync(work, { recursive: true });
const dataFile = join(work, 'records.jsonl');
writeFileSync(dataFile, records(128));
const dirs = Object.fromEntries(plan.map(({ name }) => {
  const dir = join(work, name);
  if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, SHAPES[name]!);
  return [name, dir];
}));
const server = await serveWeb({ port: 0, models: Object.entries(dirs).map(([n, d]) => `${n}=${d}`), data: [`records.jsonl=${dataFile}`], quiet: true });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
const result: Record<string, unknown> = { threads, group: GROUP, tokens: [32, 128], chromium: browser.version(), shapes: {} };
try {
  for (const { name, batches, mini } of plan) {
    const spec = SHAPES[name]!;
    const params = [...loadWeights(dirs[name]!).values()].reduce((a, t) => a + t.data.length, 0);
    const shapes = result.shapes as Record<string, Record<string, unknown>>;
    const shape = (shapes[name] ??= { params, layers: spec.layers, hidden: spec.hidden });
    for (const batch of batches) {
      const page = await browser.newPage();
      await page.goto(server.url);
      await page.waitForFunction(() => 'embedtune' in window);
      const tab = await peakRenderer(() => page.evaluate(async ({ name, batch, steps, threads, mini }) => {
        const ort = await import('onnxruntime-web' as string);
        ort.env.wasm.numThreads = threads;
        const m = await import('/embedtune-web.js' as string);
        const model = m.openModel(await m.fetchModelFiles(`/models/${name}/`), name);
        const recs = m.parseRecords(await (await fetch('/data/records.jsonl')).text(), 'records.jsonl').slice(0, batch);
        const examples = recs.map((r: { query: string; pos: string[]; neg: string[] }) => ({ query: r.query, passages: [...r.pos, ...r.neg] }));
        const trainer = await m.WebTrainer.create(model, { maxQueryLength: 32, maxPassageLength: 128, totalSteps: 10, schedule: 'constant', miniBatchSize: mini });
        let seconds = 0;
        try {
          for (let s = 0; s < steps; s++) {
            const t0 = performance.now();
            await trainer.step(examples);
            seconds = (performance.now() - t0) / 1000;
          }
        } finally {
          await trainer.close();
        }
        return seconds;
      }, { name, batch, steps: STEPS, threads, mini }));
      await page.close().catch(() => undefined);
      const node = await nodeStep(dirs[name]!, batch, readFileSync(dataFile, 'utf8')).catch((e: Error) => e.message);
      const key = `batch ${batch}${mini ? ` (GradCache slices of ${mini})` : ''}`;
      shape[key] = { page: tab.error ? { error: tab.error, rendererPeakMiB: tab.peakMiB } : { stepSeconds: tab.value, rendererPeakMiB: tab.peakMiB }, nodeStepSeconds: node };
      process.stderr.write(`browser-limits: ${name} ${key}: ${JSON.stringify(shape[key])}\n`);
    }
  }
} finally {
  await browser.close();
  await server.close();
}
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
