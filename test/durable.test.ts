/**
 * One atomic writer (util/atomic.ts), durable: every output is synced to disk before the rename
 * that publishes it — files, streamed JSONL, checkpoint and model folders, Hub downloads — and no
 * other module renames anything.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, TINY_BERT, tempDir } from './helpers.js';

/** fs calls seen: which paths were fsynced, and each rename with whether its bytes were. */
const synced = new Set<string>();
const renames: { from: string; to: string; unsynced: string[] }[] = [];
const fds = new Map<number, string>();
const real = { openSync: fs.openSync, fsyncSync: fs.fsyncSync, renameSync: fs.renameSync, writeSync: fs.writeSync };

/** Every file and folder under `path` (itself included) not synced since it was last written. */
function unsyncedUnder(path: string): string[] {
  const st = fs.statSync(path);
  const own = synced.has(path) ? [] : [path];
  if (!st.isDirectory()) return own;
  return [...own, ...fs.readdirSync(path).flatMap((f) => unsyncedUnder(join(path, f)))];
}

before(() => {
  fs.openSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    const fd = (real.openSync as (...a: unknown[]) => number)(path, ...rest);
    fds.set(fd, String(path));
    const flags = String(rest[0] ?? 'r');
    if (flags !== 'r') synced.delete(String(path)); // opened to write: not synced any more
    return fd;
  }) as typeof fs.openSync;
  fs.writeSync = ((fd: number, ...rest: unknown[]) => {
    const p = fds.get(fd);
    if (p) synced.delete(p);
    return (real.writeSync as (...a: unknown[]) => number)(fd, ...rest);
  }) as typeof fs.writeSync;
  fs.fsyncSync = ((fd: number) => {
    real.fsyncSync(fd);
    const p = fds.get(fd);
    if (p) synced.add(p);
  }) as typeof fs.fsyncSync;
  fs.renameSync = ((from: fs.PathLike, to: fs.PathLike) => {
    // A folder moved aside (to be removed) publishes nothing; everything else must be synced.
    const aside = String(to).endsWith('.old');
    renames.push({ from: String(from), to: String(to), unsynced: aside ? [] : unsyncedUnder(String(from)) });
    real.renameSync(from, to);
    for (const p of [...synced]) if (p === String(from) || p.startsWith(String(from) + '/')) synced.add(String(to) + p.slice(String(from).length));
  }) as typeof fs.renameSync;
  syncBuiltinESMExports();
});

after(() => {
  Object.assign(fs, real);
  syncBuiltinESMExports();
});

describe('outputs are synced before they are renamed into place', () => {
  it('clean (streamed JSONL + report), writeFileAtomic, a checkpoint folder, an export, a USE-Lite conversion', async () => {
    const { writeFileAtomic } = await import('../src/util/atomic.js');
    const { beirToRecords } = await import('../src/jobs/convert.js');
    const { train } = await import('../src/jobs/train.js');
    const { resolveConfig } = await import('../src/training/config.js');
    const { exportCheckpoint } = await import('../src/jobs/export.js');
    const { resolveModelDir } = await import('../src/models/use-lite.js');
    const dir = tempDir();
    writeFileAtomic(join(dir, 'a.json'), '{}');
    const records = join(dir, 'records.jsonl');
    await beirToRecords({ beir: join(ROOT, 'data', 'cranfield'), output: records, quiet: true });
    const zh = fs.readFileSync(join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').trim().split('\n').slice(0, 8).join('\n') + '\n';
    fs.writeFileSync(join(dir, 'train.jsonl'), zh);
    const out = join(dir, 'run');
    await train(resolveConfig({ model_name_or_path: TINY_BERT, train_data: join(dir, 'train.jsonl'), output_dir: out, per_device_train_batch_size: 4, max_steps: 1, group_size: 2, max_query_len: 16, max_passage_len: 16, threads: 1, save_steps: 1 }).config, { quiet: true });
    await exportCheckpoint({ checkpoint: join(out, 'checkpoint-1'), output: join(dir, 'exported') });
    const home = process.env.EMBEDTUNE_HOME;
    process.env.EMBEDTUNE_HOME = join(dir, 'home');
    try {
      resolveModelDir('use-lite');
    } finally {
      if (home === undefined) delete process.env.EMBEDTUNE_HOME;
      else process.env.EMBEDTUNE_HOME = home;
    }
    const published = (re: RegExp) => renames.filter((r) => re.test(r.to));
    for (const re of [/a\.json$/, /records\.jsonl$/, /checkpoint-1$/, /run[/\\]model\.safetensors$/, /exported$/, /use-lite-en$/]) assert.ok(published(re).length, `no rename published ${re}`);
    assert.deepEqual(renames.filter((r) => r.unsynced.length), [], 'renamed before their bytes reached the disk');
  });

  it('no module but util/atomic.ts renames (the one writer)', () => {
    const src = join(ROOT, 'src');
    const files = fs.readdirSync(src, { recursive: true }).map(String).filter((f) => f.endsWith('.ts'));
    const renaming = files.filter((f) => f !== join('util', 'atomic.ts') && /\brenameSync\b|\brename\(/.test(fs.readFileSync(join(src, f), 'utf8')));
    assert.deepEqual(renaming, []);
  });
});
