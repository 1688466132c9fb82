/**
 * Issue 26's recipe table: the demo pipeline (split judged queries 70/30 by seed, clean, mine,
 * fine-tune, evaluate on the held-out 30%) on each corpus, with the current defaults and with each
 * lever — BM25 candidates in mining, re-mining every epoch, a held-out share of the training
 * queries picking the epoch — alone and together. The test queries never choose anything.
 * Prints one JSON object: corpus → variant → { base, tuned } nDCG@10 (and the seconds it took),
 * then the README's markdown table on stderr. `--merge FILE…` prints the table of earlier runs'
 * JSON (a corpus or a variant at a time) without running anything.
 *
 *   node dist/scripts/recipe.js [corpus …] [--variants old,lexical,remine,holdout,lexremine,all] [--model use-lite]
 *   node dist/scripts/recipe.js --merge runs/recipe-*.json
 *   corpora: cranfield (bundled), cisi, cmrc2018 (../shared/data or $EMBEDTUNE_SHARED_DATA); or a BEIR folder
 *
 * One variant of Cranfield takes about 10 minutes on 2 cores (the demo's time), one of CISI 16–26;
 * all six on the three corpora take hours: run it on a quiet machine, or a corpus at a time.
 */
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demo, type DemoOptions } from '../src/jobs/demo.js';
import { repoRoot } from './make-models.js';

/** Each variant in full, so the table means the same whatever the demo's defaults are. */
const OLD = { lexical: 'none', remineEvery: 0, evalHoldout: 0, epochs: 3 } satisfies Partial<DemoOptions>;
const VARIANTS: Record<string, Partial<DemoOptions>> = {
  old: OLD,
  lexical: { ...OLD, lexical: 'bm25' },
  remine: { ...OLD, remineEvery: 1 },
  holdout: { ...OLD, evalHoldout: 0.1, epochs: 5 },
  lexremine: { ...OLD, lexical: 'bm25', remineEvery: 1 },
  all: { ...OLD, lexical: 'bm25', remineEvery: 1, evalHoldout: 0.1, epochs: 5 },
};

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const variants = (flag('--variants') ?? Object.keys(VARIANTS).join(',')).split(',');
const model = flag('--model') ?? 'use-lite';
const corpora = args.length ? args : ['cranfield', 'cisi', 'cmrc2018'];
/** The shared corpora: $EMBEDTUNE_SHARED_DATA, else ../shared/data beside the checkout. */
const shared = process.env.EMBEDTUNE_SHARED_DATA ?? join(repoRoot, '..', 'shared', 'data');
const folder = (c: string) => (c === 'cranfield' ? join(repoRoot, 'data', 'cranfield-full') : existsSync(c) ? c : join(shared, c));

interface Cell { base: number; tuned: number; trainQueries: number; testQueries: number; seconds: number }
type Table = Record<string, Record<string, Cell>>;

/** corpus × variant as markdown: base, then each variant's fine-tuned nDCG@10 (and its minutes). */
function markdown(t: Table): string {
  const names = Object.keys(VARIANTS);
  const head = `| corpus (train / test queries) | base | ${names.join(' | ')} |\n|---|---|${names.map(() => '---|').join('')}`;
  const rows = Object.entries(t).map(([corpus, cells]) => {
    const any = Object.values(cells)[0]!;
    const cell = (v: string) => (cells[v] ? `${cells[v].tuned.toFixed(4)} (${Math.round(cells[v].seconds / 60)} min)` : 'not run');
    return `| ${corpus} (${any.trainQueries} / ${any.testQueries}) | ${any.base.toFixed(4)} | ${names.map(cell).join(' | ')} |`;
  });
  return [head, ...rows].join('\n') + '\n';
}

const merge = args.indexOf('--merge');
if (merge >= 0) {
  const table: Table = {};
  for (const file of args.slice(merge + 1)) {
    let runs: Table;
    try {
      runs = JSON.parse(readFileSync(file, 'utf8')) as Table;
    } catch (e) {
      process.stderr.write(`recipe: ${file}: not a finished run's JSON (${(e as Error).message})\n`);
      process.exit(1);
    }
    for (const [corpus, cells] of Object.entries(runs)) Object.assign((table[corpus] ??= {}), cells);
  }
  process.stdout.write(markdown(table));
  process.exit(0);
}

const table: Table = {};
for (const corpus of corpora) {
  for (const v of variants) {
    if (!VARIANTS[v]) throw new Error(`unknown variant ${v}: ${Object.keys(VARIANTS).join(', ')}`);
    const t0 = performance.now();
    const r = await demo({ model, data: folder(corpus), outDir: join(tmpdir(), 'embedtune-recipe', corpus, v), quiet: true, ...VARIANTS[v] });
    (table[corpus] ??= {})[v] = { base: r.base.metrics['ndcg@10']!, tuned: r.tuned.metrics['ndcg@10']!, trainQueries: r.trainQueries, testQueries: r.testQueries, seconds: Math.round((performance.now() - t0) / 1000) };
    process.stderr.write(`recipe: ${corpus} ${v}: ${JSON.stringify(table[corpus]![v])}\n`);
  }
}
process.stdout.write(JSON.stringify(table, null, 2) + '\n');
process.stderr.write(markdown(table));
