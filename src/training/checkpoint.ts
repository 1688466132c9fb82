/**
 * Checkpoints: `checkpoint-<step>/` with the weights and AdamW moments (safetensors, graph
 * layout) and `state.json` (step, data position, RNG state). Written into a temp directory and
 * renamed, so a directory named checkpoint-N is always complete; the newest
 * `save_total_limit` are kept.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors, type NamedTensor, readSafetensors } from '../models/safetensors.js';
import { transpose2d } from '../models/params.js';
import type { Trainer } from './trainer.js';

export interface TrainState {
  step: number;
  epoch: number;
  /** Batches of the current epoch already trained. */
  batchInEpoch: number;
  /** RNG state at the start of the current epoch: the epoch's batches are rebuilt from it. */
  epochRng: number;
  bestMetric: number | null;
}

const NAME = /^checkpoint-(\d+)$/;

export function listCheckpoints(outDir: string): { step: number; path: string }[] {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .map((f) => ({ m: NAME.exec(f), f }))
    .filter(({ m, f }) => m && existsSync(join(outDir, f, 'state.json')))
    .map(({ m, f }) => ({ step: Number(m![1]), path: join(outDir, f) }))
    .sort((a, b) => a.step - b.step);
}

export function saveCheckpoint(outDir: string, trainer: Trainer, state: TrainState, keep: number | null): string {
  const final = join(outDir, `checkpoint-${state.step}`);
  const tmp = join(outDir, `.checkpoint-${state.step}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const weights = new Map<string, NamedTensor>();
  const moments = new Map<string, NamedTensor>();
  trainer.slots.forEach((s, i) => {
    weights.set(s.name, { shape: s.shape, data: s.data });
    moments.set(`m.${s.name}`, { shape: s.shape, data: trainer.optimizer.m[i] });
    moments.set(`v.${s.name}`, { shape: s.shape, data: trainer.optimizer.v[i] });
  });
  writeFileSync(join(tmp, 'weights.safetensors'), encodeSafetensors(weights));
  writeFileSync(join(tmp, 'optimizer.safetensors'), encodeSafetensors(moments));
  const transposed = trainer.slots.filter((s) => s.transposed).map((s) => s.name);
  writeFileSync(join(tmp, 'state.json'), JSON.stringify({ ...state, optimizerStep: trainer.optimizer.step, transposed }, null, 2) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  if (keep !== null && keep > 0) for (const old of listCheckpoints(outDir).slice(0, -keep)) rmSync(old.path, { recursive: true, force: true });
  return final;
}

/** A checkpoint's weights in Hugging Face layout (linear weights transposed back to [out, in]). */
export function checkpointWeights(path: string): Map<string, NamedTensor> {
  const { transposed } = JSON.parse(readFileSync(join(path, 'state.json'), 'utf8')) as { transposed: string[] };
  const t = new Set(transposed);
  const weights = readSafetensors(join(path, 'weights.safetensors'));
  return new Map([...weights].map(([name, w]) => [name, t.has(name) ? transpose2d(w) : w]));
}

/** Restores weights, moments and the optimizer step into `trainer`; returns the saved state. */
export function loadCheckpoint(path: string, trainer: Trainer): TrainState {
  const state = JSON.parse(readFileSync(join(path, 'state.json'), 'utf8')) as TrainState & { optimizerStep: number };
  const weights = readSafetensors(join(path, 'weights.safetensors'));
  const moments = readSafetensors(join(path, 'optimizer.safetensors'));
  trainer.slots.forEach((s, i) => {
    const w = weights.get(s.name);
    if (!w || w.data.length !== s.data.length) throw new Error(`${path}: checkpoint does not match the model (tensor ${s.name})`);
    s.data.set(w.data);
    trainer.optimizer.m[i].set(moments.get(`m.${s.name}`)!.data);
    trainer.optimizer.v[i].set(moments.get(`v.${s.name}`)!.data);
  });
  trainer.optimizer.step = state.optimizerStep;
  return state;
}
