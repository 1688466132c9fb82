import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';


/** The repository root (tests run from dist/test). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const TINY_BERT = join(FIXTURES, 'models', 'tiny-bert');
export const TINY_XLMR = join(FIXTURES, 'models', 'tiny-xlmr');
export const TINY_QWEN2 = join(FIXTURES, 'models', 'tiny-qwen2');
export const TINY_QWEN3 = join(FIXTURES, 'models', 'tiny-qwen3');
export const CRANFIELD = join(ROOT, 'data', 'cranfield');

export function tempDir(prefix = 'embedtune-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
