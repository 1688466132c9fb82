/**
 * A training run's output_dir: claimed by one run at a time (a lock file holding the pid; a lock
 * left by a killed run is taken over), never the base model's folder or the data's, and cleared of
 * temp files that killed runs left behind (`.checkpoint-N.tmp/`, `.<file>.<random>.tmp`).
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isWithin } from '../util/paths.js';

const LOCK = '.embedtune.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims `outDir` for this run; returns the function that releases it.
 * @example
 *   const release = claimRunDir('runs/ft', { model: 'models/bge-m3', data: { train_data: 'train.jsonl' } });
 *   try { … } finally { release(); }
 */
export function claimRunDir(outDir: string, inputs: { model: string; data: Record<string, string | null | undefined> }): () => void {
  if (isWithin(inputs.model, outDir)) throw new Error(`output_dir ${outDir} holds the base model ${inputs.model}; the export would overwrite it: choose another output_dir`);
  for (const [key, path] of Object.entries(inputs.data)) {
    if (path && isWithin(path, outDir)) throw new Error(`output_dir ${outDir} holds ${key} ${path}, which the run would overwrite: choose another output_dir`);
  }
  mkdirSync(outDir, { recursive: true });
  const lock = join(outDir, LOCK);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const pid = Number(readFileSync(lock, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new Error(`output_dir ${outDir} is in use by another training run (pid ${pid}); wait for it or choose another output_dir`);
      }
      rmSync(lock, { force: true }); // left by a run that was killed
    }
  }
  for (const f of readdirSync(outDir)) if (/^\..*\.tmp$/.test(f)) rmSync(join(outDir, f), { recursive: true, force: true });
  return () => rmSync(lock, { force: true });
}
