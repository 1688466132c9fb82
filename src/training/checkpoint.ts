/**
 * Checkpoints: `checkpoint-<step>/` with the weights and AdamW moments (safetensors, graph
 * layout, streamed tensor by tensor: any model size) and `state.json` (step, data position,
 * RNG state, the byte size of each file). Written into a temp directory and renamed, so a
 * directory named checkpoint-N is complete unless something outside us cut it; `checkCheckpoint`
 * tells, and `--resume` falls back past incomplete ones. Older checkpoints beyond
 * `save_total_limit` are removed only after the new one is in place.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { readJsonObject } from '../util/json.js';
import { join } from 'node:path';
import { type NamedTensor, readHeader, readSafetensors, readSafetensorsInto, writeSafetensors } from '../models/safetensors.js';
import { transpose2d } from '../models/params.js';
import { writeFileAtomic, writeFolderAtomic } from '../util/atomic.js';
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

interface SavedState extends TrainState {
  optimizerStep: number;
  /** Tensors stored as [in, out] (graph layout). */
  transposed: string[];
  /** Byte size of each file, checked before resuming. */
  files?: Record<string, number>;
}

const NAME = /^checkpoint-(\d+)$/;
const WEIGHTS = 'weights.safetensors';
const MOMENTS = 'optimizer.safetensors';

/** Directories named checkpoint-N that have a state.json, oldest first (complete or not: see checkCheckpoint). */
export function listCheckpoints(outDir: string): { step: number; path: string }[] {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .map((f) => ({ m: NAME.exec(f), f }))
    .filter(({ m, f }) => m && existsSync(join(outDir, f, 'state.json')))
    .map(({ m, f }) => ({ step: Number(m![1]), path: join(outDir, f) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Writes `checkpoint-<step>` for the trainer's current state. A failed write (a full disk)
 * removes the partial directory, leaves every earlier checkpoint as it was and throws naming the path.
 */
export async function saveCheckpoint(outDir: string, trainer: Trainer, state: TrainState, keep: number | null): Promise<string> {
  const final = await writeCheckpoint(join(outDir, `checkpoint-${state.step}`), trainer, state);
  if (keep !== null && keep > 0) for (const old of listCheckpoints(outDir).slice(0, -keep)) rmSync(old.path, { recursive: true, force: true });
  return final;
}

/** Writes the trainer's state as the checkpoint folder `final` (whole, or not at all). */
export async function writeCheckpoint(final: string, trainer: Trainer, state: TrainState): Promise<string> {
  try {
    await writeFolderAtomic(final, async (tmp) => {
      const saved = await trainer.saveState();
      writeSafetensors(join(tmp, WEIGHTS), saved.weights);
      writeSafetensors(join(tmp, MOMENTS), saved.moments);
      const files = Object.fromEntries([WEIGHTS, MOMENTS].map((f) => [f, statSync(join(tmp, f)).size]));
      const full: SavedState = { ...state, optimizerStep: saved.optimizerStep, transposed: saved.transposed, files };
      writeFileAtomic(join(tmp, 'state.json'), JSON.stringify(full, null, 2) + '\n');
    });
  } catch (e) {
    throw new Error(`checkpoint ${final} was not saved: ${(e as Error).message}`);
  }
  return final;
}

function readState(path: string): SavedState {
  const file = join(path, 'state.json');
  if (!existsSync(file)) throw new Error(`${file}: missing`);
  const state = readJsonObject(file) as unknown as SavedState;
  for (const k of ['step', 'epoch', 'batchInEpoch', 'epochRng', 'optimizerStep'] as const) {
    if (!Number.isSafeInteger(state[k]) || state[k] < 0) throw new Error(`${file}: "${k}" must be an integer ≥ 0, got ${JSON.stringify(state[k])}`);
  }
  if (state.bestMetric !== null && state.bestMetric !== undefined && !Number.isFinite(state.bestMetric)) throw new Error(`${file}: "bestMetric" must be a number or null`);
  return state;
}

/** Why a checkpoint cannot be resumed from (a missing or truncated file, by path), or null when it is complete. */
export function checkCheckpoint(path: string): string | null {
  try {
    const state = readState(path);
    for (const f of [WEIGHTS, MOMENTS]) {
      const file = join(path, f);
      if (!existsSync(file)) return `${file}: missing`;
      const size = statSync(file).size;
      const want = state.files?.[f];
      if (want !== undefined && size !== want) return `${file}: truncated (${size} of ${want} bytes)`;
      readHeader(file); // checks every tensor's range against the file
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The checkpoint to resume: `explicit` (which must be complete), or the newest complete one in
 * `outDir`; each incomplete one passed over is reported through `warn`.
 */
export function resumePath(outDir: string, explicit: string | undefined, warn: (msg: string) => void): string {
  if (explicit) {
    const problem = checkCheckpoint(explicit);
    if (problem) throw new Error(`resume: checkpoint ${explicit} is incomplete: ${problem}`);
    return explicit;
  }
  for (const c of listCheckpoints(outDir).reverse()) {
    const problem = checkCheckpoint(c.path);
    if (!problem) return c.path;
    warn(`resume: skipping incomplete checkpoint ${c.path}: ${problem}`);
  }
  throw new Error(`resume: no complete checkpoint in ${outDir}`);
}

/** A checkpoint's weights in Hugging Face layout (linear weights transposed back to [out, in]). */
export function checkpointWeights(path: string): Map<string, NamedTensor> {
  const t = new Set(readState(path).transposed);
  const weights = readSafetensors(join(path, WEIGHTS));
  return new Map([...weights].map(([name, w]) => [name, t.has(name) ? transpose2d(w) : w]));
}

/** Restores weights, moments and the optimizer step into `trainer` (read straight into its buffers); returns the saved state. */
export async function loadCheckpoint(path: string, trainer: Trainer): Promise<TrainState> {
  const problem = checkCheckpoint(path);
  if (problem) throw new Error(`resume: checkpoint ${path} is incomplete: ${problem}`);
  const state = readState(path);
  await trainer.restoreState((targets) => {
    const weightHeader = readHeader(join(path, WEIGHTS));
    for (const [name, data] of targets.weights) {
      const e = weightHeader.tensors.get(name);
      if (!e || e.shape.reduce((a, b) => a * b, 1) !== data.length) throw new Error(`${path}: checkpoint does not match the model (tensor ${name})`);
    }
    readSafetensorsInto(join(path, WEIGHTS), targets.weights);
    readSafetensorsInto(join(path, MOMENTS), targets.moments);
  }, state.optimizerStep);
  const { optimizerStep: _s, transposed: _t, files: _f, ...train } = state;
  return train;
}
