/**
 * Training from a TypeScript program: `train()` with records in memory, callbacks and an
 * AbortSignal; `Trainer` for a custom loop; and both from the packed package (npm pack) in a
 * separate project, with the README's Library program run as written.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { train, Trainer, type LogEntry } from '../src/index.js';
import { CRANFIELD, ROOT, TINY_BERT, tempDir } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const records = readFileSync(ZH, 'utf8').trim().split('\n').slice(0, 24).map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
const small = { per_device_train_batch_size: 4, group_size: 2, max_query_len: 16, max_passage_len: 16, threads: 1, learning_rate: 1e-3 };

describe('train() from a program', () => {
  it('records in memory train as the same records in a file do; onStep and onLog hear every step and log line', async () => {
    const dir = tempDir();
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const steps: number[] = [];
    const logs: LogEntry[] = [];
    const fromMemory = await train({ model_name_or_path: TINY_BERT, output_dir: join(dir, 'a'), train_data: records, max_steps: 3, logging_steps: 1, ...small }, { quiet: true, onStep: (s) => steps.push(s.step), onLog: (e) => logs.push(e) });
    const fromFile = await train({ model_name_or_path: TINY_BERT, output_dir: join(dir, 'b'), train_data: file, max_steps: 3, ...small }, { quiet: true });
    assert.equal(fromMemory.finalLoss, fromFile.finalLoss);
    assert.deepEqual(steps, [1, 2, 3]);
    assert.deepEqual(logs.map((l) => l.step), [1, 2, 3]);
    assert.deepEqual(logs, readFileSync(join(dir, 'a', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)));
    // A generator is an iterable too; a bad record is named by its index.
    function* gen() { yield* records; }
    assert.equal((await train({ model_name_or_path: TINY_BERT, output_dir: join(dir, 'c'), train_data: gen(), max_steps: 3, ...small }, { quiet: true })).finalLoss, fromFile.finalLoss);
    await assert.rejects(train({ model_name_or_path: TINY_BERT, output_dir: join(dir, 'd'), train_data: [...records.slice(0, 2), { query: 'q', pos: 'not a list' } as never], max_steps: 1, ...small }, { quiet: true }), /train_data:3: field "pos": /);
  });

  it('an AbortSignal stops between steps with a checkpoint of that step; resuming finishes as an unstopped run', async () => {
    const dir = tempDir();
    const stop = new AbortController();
    const config = { model_name_or_path: TINY_BERT, output_dir: join(dir, 'run'), train_data: records, max_steps: 4, save_steps: 100, ...small };
    const stopped = await train(config, { quiet: true, signal: stop.signal, onStep: (s) => s.step === 2 && stop.abort() }).then(() => undefined, (e: Error & { checkpoint?: string }) => e);
    assert.equal(stopped?.name, 'AbortError');
    assert.match(stopped!.message, /stopped by its AbortSignal after step 2; checkpoint .*checkpoint-2/);
    assert.ok(existsSync(join(dir, 'run', 'checkpoint-2', 'state.json')));
    assert.deepEqual(readdirSync(join(dir, 'run')).filter((f) => f.startsWith('.')), [], 'no temp files left');
    const resumed = await train({ ...config, resume_from_checkpoint: true }, { quiet: true });
    const straight = await train({ ...config, output_dir: join(dir, 'straight') }, { quiet: true });
    assert.equal(resumed.finalLoss, straight.finalLoss);
  });
});

describe('Trainer for a custom loop', () => {
  it('create → step → evaluate → save → restore → export', async () => {
    const dir = tempDir();
    await using trainer = await Trainer.create(TINY_BERT, { learningRate: 1e-3, threads: 1, maxQueryLength: 16, maxPassageLength: 16 });
    const batch = records.slice(0, 4).map((r) => ({ query: r.query, passages: [r.pos[0]!, r.neg[0]!] }));
    const before = await trainer.evaluate(CRANFIELD);
    const first = await trainer.step(batch);
    await trainer.save(join(dir, 'ckpt'));
    const second = await trainer.step(batch);
    await trainer.restore(join(dir, 'ckpt'));
    assert.equal((await trainer.step(batch)).loss, second.loss, 'restore gives back the saved state');
    assert.ok(second.loss < first.loss);
    const after = await trainer.evaluate(CRANFIELD);
    assert.notEqual(after.metrics['ndcg@10'], before.metrics['ndcg@10']);
    await trainer.export(join(dir, 'model'));
    const { evaluate } = await import('../src/jobs/evaluate.js');
    const exported = await evaluate({ model: join(dir, 'model'), data: CRANFIELD, quiet: true, threads: 1, maxQueryLength: 16, maxPassageLength: 16 });
    assert.ok(Math.abs(exported.metrics['ndcg@10']! - after.metrics['ndcg@10']!) < 1e-6);
  });
});

/** A project outside the repository with the packed tarball installed (its dependencies linked: no network). */
function packedProject(): string {
  const proj = tempDir('embedtune-consumer-');
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', proj], { cwd: ROOT, encoding: 'utf8' });
  const tarball = join(proj, (JSON.parse(out) as { filename: string }[])[0]!.filename);
  const pkg = join(proj, 'node_modules', 'embedtune');
  mkdirSync(pkg, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', pkg, '--strip-components', '1']);
  const deps = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  for (const d of [...deps, '@types/node']) {
    mkdirSync(join(proj, 'node_modules', d, '..'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', d), join(proj, 'node_modules', d));
  }
  writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  return proj;
}

describe('the packed package, from a separate project', () => {
  it('fine-tunes from an in-memory array (ESM), type-checks against the published declarations, loads from CommonJS, and runs the README program as written', async () => {
    const proj = packedProject();
    assert.ok(!existsSync(join(proj, 'node_modules', 'embedtune', 'src')), 'sources are not shipped');
    const program = `import { train, Trainer } from 'embedtune';
const records: { query: string; pos: string[]; neg: string[] }[] = ${JSON.stringify(records.slice(0, 8))};
const steps: number[] = [];
const r = await train({ model_name_or_path: ${JSON.stringify(TINY_BERT)}, output_dir: 'out', train_data: records, max_steps: 2, per_device_train_batch_size: 4, group_size: 2, threads: 1 }, { quiet: true, onStep: (s) => { steps.push(s.step); } });
const t: Trainer = await Trainer.create('out', { threads: 1 });
await t.close();
console.log(JSON.stringify({ steps, loss: r.finalLoss }));
`;
    writeFileSync(join(proj, 'main.ts'), program);
    writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['main.ts'] }));
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', proj], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, `the consumer does not type-check: ${tsc.stdout}${tsc.stderr}`);
    writeFileSync(join(proj, 'main.mjs'), program.replace(': { query: string; pos: string[]; neg: string[] }[]', '').replace(': number[]', '').replace('const t: Trainer', 'const t'));
    const run = spawnSync(process.execPath, ['main.mjs'], { cwd: proj, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!) as { steps: number[]; loss: number };
    assert.deepEqual(out.steps, [1, 2]);
    assert.ok(Number.isFinite(out.loss));
    writeFileSync(join(proj, 'main.cjs'), "const { train, Trainer, clean } = require('embedtune'); console.log([train, Trainer, clean].map((f) => typeof f).join(' '));");
    const cjs = spawnSync(process.execPath, ['main.cjs'], { cwd: proj, encoding: 'utf8' });
    assert.equal(cjs.stdout.trim(), 'function function function', cjs.stderr);

    // The README's Library program, as written (it reads data/cranfield from where it runs).
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /<!-- library-program -->\s*```js\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, 'README.md: no <!-- library-program --> block');
    symlinkSync(join(ROOT, 'data'), join(proj, 'data'));
    writeFileSync(join(proj, 'readme.mjs'), block[1]!);
    const ran = spawnSync(process.execPath, ['readme.mjs'], { cwd: proj, encoding: 'utf8' });
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(ran.stdout, /ndcg@10 \d\.\d{4} → \d\.\d{4}/);
  });
});
