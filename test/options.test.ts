/**
 * Options declared once (src/options.ts): the CLI is built from the table, the README's option
 * reference is rendered from it, and cli.ts can be imported without running anything.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { COMMANDS, DEFAULTS, optionsMarkdown } from '../src/options.js';
import { withOptions } from '../scripts/options-doc.js';
import { CRANFIELD, ROOT, tempDir } from './helpers.js';

describe('one options table', () => {
  it('the README holds the reference the table renders now', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    assert.equal(readme, withOptions(readme), 'README.md is out of date: run node dist/scripts/options-doc.js');
    assert.ok(readme.includes(optionsMarkdown()));
  });

  it('cli.ts imports without running the program; its parser takes every flag of the table under the library key', async () => {
    const listeners = process.listenerCount('SIGINT');
    const exitCode = process.exitCode;
    const { buildProgram } = await import('../src/cli.js');
    assert.equal(process.listenerCount('SIGINT'), listeners, 'importing cli.js installed signal handlers');
    assert.equal(process.exitCode, exitCode, 'importing cli.js ran a command');
    const program = buildProgram();
    for (const spec of COMMANDS) {
      const cmd = program.commands.find((c) => c.name() === spec.name);
      assert.ok(cmd, spec.name);
      for (const o of spec.options) assert.ok(cmd.options.some((x) => x.flags === o.flags), `${spec.name} ${o.flags}`);
      assert.equal(cmd.options.length, spec.options.length, `${spec.name}: options not in the table`);
    }
    // A command run through the imported program: the library's defaults apply (convert's minScore 1).
    const out = join(tempDir(), 'c.jsonl');
    await program.parseAsync(['node', 'embedtune', 'convert', '--beir', CRANFIELD, '-o', out, '-q']);
    assert.ok(existsSync(out));
    assert.equal(DEFAULTS.convert.minScore, 1);
    assert.match(program.commands.find((c) => c.name() === 'mine')!.helpInformation(), /--range-max <n>\s+rank past the last that may be sampled\s+\(default: 210\)/);
  });
});
