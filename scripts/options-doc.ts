/**
 * Writes the option reference (rendered from src/options.ts) into README.md between its
 * `<!-- options:begin -->` and `<!-- options:end -->` markers; `--check` only says whether the
 * README is up to date (exit 1 if not).
 *   node dist/scripts/options-doc.js [--check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { optionsMarkdown, PACKAGE_ROOT } from '../src/options.js';

const BEGIN = '<!-- options:begin (generated from src/options.ts by `node dist/scripts/options-doc.js`) -->';
const END = '<!-- options:end -->';

/** README text with the reference block replaced by the table's current rendering. */
export function withOptions(readme: string): string {
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md: no ${BEGIN} … ${END} block`);
  return `${readme.slice(0, a + BEGIN.length)}\n\n${optionsMarkdown()}\n\n${readme.slice(b)}`;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const path = join(PACKAGE_ROOT, 'README.md');
  const now = readFileSync(path, 'utf8');
  const next = withOptions(now);
  if (process.argv.includes('--check')) {
    if (now !== next) {
      process.stderr.write('README.md: the option reference is out of date; run node dist/scripts/options-doc.js\n');
      process.exit(1);
    }
  } else if (now !== next) writeFileSync(path, next);
}
