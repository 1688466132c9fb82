/**
 * A `tokenizer.json` can carry regular expressions (Split pre-tokenizers, Replace normalizers)
 * that backtrack catastrophically: `(a+)+$` on 40 letters runs for hours, and JavaScript
 * cannot interrupt a running RegExp. Before the tokenizer is used, each pattern is run on
 * probe strings (long runs of one character class, then a character that breaks the match)
 * in a worker thread, stopped when the patterns take more than 100× what a linear pattern takes
 * on the same probes in the same worker (so the answer does not depend on how busy the machine
 * is); a pattern that does not finish is refused, naming the file and the pattern. Texts are also cut before tokenizing (see
 * tokenizer.ts), which bounds polynomial backtracking.
 */
import { Worker } from 'node:worker_threads';

/** Every `pattern.Regex` string in a parsed tokenizer.json, found without recursion. */
export function tokenizerRegexes(json: unknown): string[] {
  const found = new Set<string>();
  const stack: unknown[] = [json];
  while (stack.length) {
    const node = stack.pop();
    if (Array.isArray(node)) stack.push(...node);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'vocab' || key === 'merges' || key === 'added_tokens') continue;
        if (key === 'pattern' && value && typeof value === 'object' && typeof (value as { Regex?: unknown }).Regex === 'string') {
          found.add((value as { Regex: string }).Regex);
        } else stack.push(value);
      }
    }
  }
  return [...found];
}

/*
 * The worker: flag[0] is its state (0 starting, 3 calibrated, 1 done, 2 failed), flag[1] the
 * pattern it is on, flag[2] the microseconds the calibration took. It first runs the probes
 * through `[\s\S]` (one match per character: the most exec calls a linear pattern makes on them),
 * then each pattern through the same probes.
 */
const PROBE_WORKER = `
const { workerData } = require('node:worker_threads');
const flag = new Int32Array(workerData.flag);
const classes = ['a', 'A', '1', ' ', '\\n', '\\t', '!', "'", '_', '-', '.', '\\u00e9', '\\u4e2d', '\\u0000'];
const run = (re, probes) => { for (const p of probes) { re.lastIndex = 0; for (let n = 0; n < 4096 && re.exec(p); n++) if (re.lastIndex === 0) break; } };
try {
const probes = [];
for (const c of classes) for (const end of ['', '!', 'a', ' ', '\\u0000', '1']) {
  probes.push(c.repeat(48) + end, c.repeat(2048) + end);
}
for (const a of classes) for (const b of classes) if (a !== b) probes.push((a + b).repeat(32) + '\\u0000');
const t0 = performance.now();
run(new RegExp('[\\\\s\\\\S]', 'gu'), probes);
Atomics.store(flag, 2, Math.max(1, Math.round((performance.now() - t0) * 1000)));
Atomics.store(flag, 0, 3);
Atomics.notify(flag, 0);
for (let i = 0; i < workerData.patterns.length; i++) {
  Atomics.store(flag, 1, i);
  let re;
  try { re = new RegExp(workerData.patterns[i], 'gu'); } catch { continue; }
  run(re, probes);
}
Atomics.store(flag, 0, 1);
} catch { Atomics.store(flag, 0, 2); }
Atomics.notify(flag, 0);
`;

/** How many times the calibration's time one pattern may take (seen: a tokenizer's patterns take 0.01–0.3× it). */
const BUDGET = 100;

/**
 * Throws naming `file` and the pattern when one of `patterns` does not finish its probes within
 * BUDGET times what a linear pattern takes on them in the same worker (at least `minMs`), blocking
 * the calling thread meanwhile. The budget is per pattern and measured in the run, so a busy
 * machine (slower worker start and calibration alike) and a tokenizer with many patterns get the
 * same answer as an idle machine and one pattern; a catastrophic pattern takes hours, not a multiple.
 * @example checkRegexes(['\\s+|\\w+'], 'model/tokenizer.json'); // returns
 */
export function checkRegexes(patterns: string[], file: string, minMs = 1000): void {
  if (patterns.length === 0) return;
  const shared = new SharedArrayBuffer(12);
  const flag = new Int32Array(shared);
  // execArgv: [] — the probe is CommonJS; a parent started with --input-type=module (node -e in a
  // module program) would pass that on, the probe would die at its first line, and the wait below
  // would run out its safety limit.
  const worker = new Worker(PROBE_WORKER, { eval: true, workerData: { patterns, flag: shared }, execArgv: [] });
  try {
    // Starting a worker takes what the machine gives it: no limit but a safety one.
    const start = Date.now();
    while (Atomics.load(flag, 0) === 0 && Date.now() - start < 600_000) Atomics.wait(flag, 0, 0, 1000);
    if (Atomics.load(flag, 0) === 0) throw new Error(`${file}: the regular-expression check could not start a worker thread in 10 minutes`);
    const budget = Math.max(minMs, (BUDGET * Atomics.load(flag, 2)) / 1000);
    let [current, since] = [-1, Date.now()];
    while (Atomics.load(flag, 0) === 3) {
      Atomics.wait(flag, 0, 3, 20);
      const i = Atomics.load(flag, 1);
      if (i !== current) [current, since] = [i, Date.now()];
      else if (Atomics.load(flag, 0) === 3 && Date.now() - since > budget) {
        throw new Error(
          `${file}: the regular expression ${JSON.stringify(patterns[i])} backtracks catastrophically ` +
            `(it did not finish on probes of short strings within ${BUDGET}× what a linear pattern takes on them); this tokenizer would hang on some texts`,
        );
      }
    }
  } finally {
    void worker.terminate();
    worker.unref();
  }
}
