/**
 * A `tokenizer.json` can carry regular expressions (Split pre-tokenizers, Replace normalizers)
 * that backtrack catastrophically: `(a+)+$` on 40 letters runs for hours, and JavaScript
 * cannot interrupt a running RegExp. Before the tokenizer is used, each pattern is run on
 * probe strings (long runs of one character class, then a character that breaks the match)
 * in a worker thread that is stopped after a time limit; a pattern that does not finish is
 * refused, naming the file and the pattern. Texts are also cut before tokenizing (see
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

const PROBE_WORKER = `
const { workerData } = require('node:worker_threads');
const flag = new Int32Array(workerData.flag);
const classes = ['a', 'A', '1', ' ', '\\n', '\\t', '!', "'", '_', '-', '.', '\\u00e9', '\\u4e2d', '\\u0000'];
try {
const probes = [];
for (const c of classes) for (const end of ['', '!', 'a', ' ', '\\u0000', '1']) {
  probes.push(c.repeat(48) + end, c.repeat(2048) + end);
}
for (const a of classes) for (const b of classes) if (a !== b) probes.push((a + b).repeat(32) + '\\u0000');
for (let i = 0; i < workerData.patterns.length; i++) {
  Atomics.store(flag, 1, i);
  let re;
  try { re = new RegExp(workerData.patterns[i], 'gu'); } catch { continue; }
  for (const p of probes) { re.lastIndex = 0; for (let n = 0; n < 4096 && re.exec(p); n++) if (re.lastIndex === 0) break; }
}
Atomics.store(flag, 0, 1);
} catch { Atomics.store(flag, 0, 2); }
Atomics.notify(flag, 0);
`;

/**
 * Throws naming `file` and the pattern when one of `patterns` does not finish its probes
 * within `limitMs` (blocking the calling thread meanwhile).
 * @example checkRegexes(['\\s+|\\w+'], 'model/tokenizer.json'); // returns
 */
export function checkRegexes(patterns: string[], file: string, limitMs = 3000): void {
  if (patterns.length === 0) return;
  const shared = new SharedArrayBuffer(8);
  const flag = new Int32Array(shared);
  const worker = new Worker(PROBE_WORKER, { eval: true, workerData: { patterns, flag: shared } });
  const deadline = Date.now() + limitMs;
  while (Atomics.load(flag, 0) === 0 && Date.now() < deadline) Atomics.wait(flag, 0, 0, Math.max(1, deadline - Date.now()));
  const done = Atomics.load(flag, 0) !== 0;
  void worker.terminate();
  worker.unref();
  if (!done) {
    const pattern = patterns[Atomics.load(flag, 1)]!;
    throw new Error(
      `${file}: the regular expression ${JSON.stringify(pattern)} backtracks catastrophically ` +
        `(it did not finish on a ${limitMs / 1000} s probe of short strings); this tokenizer would hang on some texts`,
    );
  }
}
