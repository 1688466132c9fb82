/**
 * Encode throughput (texts/s) of a random MiniLM-L6-shaped BERT at 128 tokens per text.
 *   node dist/scripts/encode-throughput.js [texts=512] [threads=all]
 */
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder } from '../src/models/encoder.js';
import { MINILM_L6, repoRoot, writeRandomModel } from './make-models.js';

const n = Number(process.argv[2] ?? 512);
const threads = process.argv[3] ? Number(process.argv[3]) : undefined;
const dir = join(tmpdir(), 'embedtune-minilm-l6');
if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, MINILM_L6);
const docs = readFileSync(join(repoRoot, 'data', 'cranfield', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
const long = docs.filter((d) => d.split(' ').length > 200);
const texts = Array.from({ length: n }, (_, i) => long[i % long.length]!);
const enc = await Encoder.load(dir, { pooling: 'mean', threads });
const lengths = texts.slice(0, 32).map((t) => enc.tokenize(t!, { maxLength: 128 }).length);
if (Math.min(...lengths) !== 128) throw new Error('texts must fill 128 tokens');
await enc.encode(texts.slice(0, 64), { maxLength: 128, quiet: true }); // warm-up
const t0 = performance.now();
await enc.encode(texts, { maxLength: 128, batchSize: 32, quiet: true });
const s = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ model: 'MiniLM-L6 shape (random)', seq: 128, batch: 32, threads: threads ?? 'all', texts: n, seconds: +s.toFixed(3), textsPerSecond: +(n / s).toFixed(1) }));
await enc.close();
