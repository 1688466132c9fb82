/**
 * report: one self-contained `report.html` for a run directory — training loss and learning
 * rate from `log.jsonl`, base vs fine-tuned metrics, histograms of mined positive and negative
 * scores, clean's counts, and the run's config. uPlot (MIT) is inlined, so the file opens
 * offline.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { writeFileAtomic } from '../data/jsonl.js';
import { readJsonFile } from '../util/json.js';

const require = createRequire(import.meta.url);

function readJson(path: string): unknown {
  return existsSync(path) ? readJsonFile(path) : null;
}

/**
 * The records of a JSONL file a run writes. A bad line names file and line; a torn last line (the
 * run stopped while writing it) is left out and said so on stderr.
 */
function readJsonl(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: Record<string, unknown>[] = [];
  lines.forEach((l, i) => {
    if (!l) return;
    try {
      out.push(JSON.parse(l));
    } catch (e) {
      const torn = lines.slice(i + 1).every((x) => !x) && !readFileSync(path, 'utf8').endsWith('\n');
      if (!torn) throw new Error(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
      process.stderr.write(`report: ${path}:${i + 1}: a torn last line (the run stopped while writing it), left out\n`);
    }
  });
  return out;
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
/** JSON that is safe inside a <script> element. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

interface Histogram {
  lo: number;
  hi: number;
  counts: number[];
}

/** What the report reads of mine's stats file. */
interface MineStats {
  histogram: { positives: Histogram; negatives: Histogram };
  reranker?: { model: string; margin: number; dropped_count: number; kept: { count: number }; histogram: { positives: Histogram; kept: Histogram; dropped: Histogram } };
}

/** Finds the run's pieces: the demo's layout (model/, eval.*.json, mine.stats.json) or a train output_dir. */
function collect(runDir: string) {
  const modelDir = existsSync(join(runDir, 'model', 'log.jsonl')) ? join(runDir, 'model') : runDir;
  const parts = [join(modelDir, 'log.jsonl'), join(runDir, 'eval.tuned.json'), join(runDir, 'eval.base.json'), join(runDir, 'mine.stats.json')];
  if (!parts.some(existsSync)) throw new Error(`${runDir}: not a run folder (no log.jsonl, eval.*.json or mine.stats.json): nothing to report`);
  const droppedPath = ['train.clean.dropped.jsonl', 'clean.dropped.jsonl'].map((f) => join(runDir, f)).find(existsSync);
  return {
    log: readJsonl(join(modelDir, 'log.jsonl')),
    config: readJson(join(modelDir, 'train_config.json')),
    base: readJson(join(runDir, 'eval.base.json')) as { metrics: Record<string, number> } | null,
    tuned: readJson(join(runDir, 'eval.tuned.json')) as { metrics: Record<string, number> } | null,
    mine: readJson(join(runDir, 'mine.stats.json')) as MineStats | null,
    dropped: droppedPath ? readJsonl(droppedPath).length : null,
    cleanInput: existsSync(join(runDir, 'train.jsonl')) ? readJsonl(join(runDir, 'train.jsonl')).length : null,
  };
}

function metricsTable(base: Record<string, number> | undefined, tuned: Record<string, number> | undefined): string {
  const names = Object.keys(tuned ?? base ?? {});
  if (!names.length) return '<p>No evaluation results in this run.</p>';
  const rows = names.map((n) => {
    const b = base?.[n];
    const t = tuned?.[n];
    const d = b !== undefined && t !== undefined ? t - b : undefined;
    const cls = d === undefined ? '' : d > 0 ? 'up' : d < 0 ? 'down' : '';
    const f = (x?: number) => (x === undefined ? '–' : x.toFixed(4));
    return `<tr><td>${escape(n)}</td><td>${f(b)}</td><td>${f(t)}</td><td class="${cls}">${d === undefined ? '–' : (d >= 0 ? '+' : '') + d.toFixed(4)}</td></tr>`;
  });
  return `<table id="metrics"><thead><tr><th>metric</th><th>base</th><th>fine-tuned</th><th>Δ</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The evaluations log.jsonl holds (eval_data every eval_steps): step by step, at 10. */
function heldOutTable(evals: { step: number; eval: Record<string, number> }[]): string {
  const names = Object.keys(evals[0]!.eval).filter((n) => n.endsWith('@10'));
  const head = `<tr><th>step</th>${names.map((n) => `<th>${escape(n)}</th>`).join('')}</tr>`;
  const rows = evals.map((e) => `<tr><td>${e.step}</td>${names.map((n) => `<td>${e.eval[n]?.toFixed(4) ?? '–'}</td>`).join('')}</tr>`);
  return `<table id="held-out"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

/**
 * Writes `<runDir>/report.html` and returns its path.
 * @example
 *   writeReport('runs/demo');
 */
export function writeReport(runDir: string): string {
  const r = collect(runDir);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const steps = r.log.filter((l) => typeof l.loss === 'number');
  const series = { step: steps.map((l) => l.step), loss: steps.map((l) => l.loss), lr: steps.map((l) => l.lr) };
  const hist = r.mine?.histogram;
  const histData = hist ? { lo: hist.positives.lo, hi: hist.positives.hi, pos: hist.positives.counts, neg: hist.negatives.counts } : null;
  const rr = r.mine?.reranker;
  const rerankData = rr ? { lo: rr.histogram.positives.lo, hi: rr.histogram.positives.hi, pos: rr.histogram.positives.counts, kept: rr.histogram.kept.counts, dropped: rr.histogram.dropped.counts } : null;
  const rerankLine = rr
    ? `${rr.dropped_count} of ${rr.dropped_count + rr.kept.count} candidates in the mining window dropped as likely false negatives: ${rr.model} scored them within ${rr.margin} of the query's positive, or above.`
    : 'No reranker in this run.';
  const rounds = r.log.filter((l) => l.remine) as { step: number; remine: { epoch: number; queries: number; pool: number; kept_old: number; lexical_share?: number } }[];
  const remineLines = rounds.length
    ? rounds.map(({ step, remine: m }) => `<li>epoch ${m.epoch}: negatives re-mined at step ${step} with the weights then (${m.queries} queries, pool ${m.pool}${m.lexical_share === undefined ? '' : `, ${(100 * m.lexical_share).toFixed(1)}% from BM25`}${m.kept_old ? `, ${m.kept_old} kept their previous ones` : ''})</li>`).join('')
    : '<li>No re-mining in this run.</li>';
  const evals = r.log.filter((l) => l.eval) as { step: number; eval: Record<string, number> }[];
  const evalTable = evals.length ? heldOutTable(evals) : '<p>No evaluations during training.</p>';
  const cleanLine = r.dropped === null ? 'No clean step in this run.' : `${r.dropped} of ${r.cleanInput ?? '?'} training queries dropped as near-duplicates.`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>embedtune report</title>
<style>${uplotCss}
body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}td:first-child{text-align:left}
.up{color:#070}.down{color:#b00}pre{background:#f6f6f6;padding:1em;overflow:auto}.chart{margin:1em 0}</style>
<script>${uplotJs}</script></head><body>
<h1>embedtune report</h1>
<h2>Evaluation: base vs fine-tuned</h2>${metricsTable(r.base?.metrics, r.tuned?.metrics)}
<h2>Training</h2><div id="loss" class="chart"></div><div id="lr" class="chart"></div>
<h2>Held out during training</h2>${evalTable}
<h2>Re-mining</h2><ul id="remine">${remineLines}</ul>
<h2>Mined scores</h2><div id="hist" class="chart"></div>
<h2>Reranker</h2><p id="rerank">${escape(rerankLine)}</p><div id="rerank-hist" class="chart"></div>
<h2>Clean</h2><p id="clean">${escape(cleanLine)}</p>
<h2>Config</h2><pre>${escape(JSON.stringify(r.config, null, 2) ?? 'none')}</pre>
<script>
const series = ${scriptJson(series)};
const hist = ${scriptJson(histData)};
const rerank = ${scriptJson(rerankData)};
const fmt = (u, vals) => vals.map((v) => (v === 0 ? '0' : Math.abs(v) < 0.01 ? v.toExponential(1) : +v.toFixed(3)));
const opts = (title, label, color) => ({ title, width: 900, height: 260, scales: { x: { time: false } },
  axes: [{ label: 'step' }, { values: fmt, size: 60 }], series: [{ label: 'step' }, { label, stroke: color, width: 2 }] });
if (series.step.length) {
  new uPlot(opts('Training loss', 'loss', '#1f77b4'), [series.step, series.loss], document.getElementById('loss'));
  new uPlot(opts('Learning rate', 'lr', '#ff7f0e'), [series.step, series.lr], document.getElementById('lr'));
} else document.getElementById('loss').textContent = 'No training log in this run.';
/** A histogram chart: bins over [lo, hi], one bar series per { label, counts, color }. */
function histogram(el, title, xLabel, h, bars) {
  const w = (h.hi - h.lo) / bars[0].counts.length;
  const x = bars[0].counts.map((_, i) => h.lo + (i + 0.5) * w);
  const paths = uPlot.paths.bars({ size: [0.9, 100] });
  new uPlot({ title, width: 900, height: 260, scales: { x: { time: false } }, axes: [{ label: xLabel }, { label: 'count' }],
    series: [{ label: 'score' }, ...bars.map((b) => ({ label: b.label, stroke: b.color, fill: b.color + '66', paths }))] },
    [x, ...bars.map((b) => b.counts)], document.getElementById(el));
}
if (hist) histogram('hist', 'query·passage scores: positives vs mined negatives', 'cosine score', hist,
  [{ label: 'positives', counts: hist.pos, color: '#2ca02c' }, { label: 'negatives', counts: hist.neg, color: '#d62728' }]);
else document.getElementById('hist').textContent = 'No mining statistics in this run.';
if (rerank) histogram('rerank-hist', 'reranker scores: positives, kept and dropped candidates', 'reranker score', rerank,
  [{ label: 'positives', counts: rerank.pos, color: '#2ca02c' }, { label: 'kept', counts: rerank.kept, color: '#1f77b4' }, { label: 'dropped', counts: rerank.dropped, color: '#d62728' }]);
</script></body></html>
`;
  const path = join(runDir, 'report.html');
  writeFileAtomic(path, html);
  return path;
}
