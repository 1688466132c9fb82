/** export: a training checkpoint → a model folder (the same layout `train` writes at the end). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isWithin } from '../util/paths.js';
import { readConfig } from '../models/config.js';
import { exportModel } from '../models/export.js';
import { checkCheckpoint, checkpointWeights } from '../training/checkpoint.js';
import type { SafeDType } from '../models/safetensors.js';
import { resolveModel } from '../models/resolve.js';
import type { TrainConfig } from '../training/config.js';

/**
 * @example
 *   await exportCheckpoint({ checkpoint: 'runs/ft/checkpoint-200', output: 'models/ft-200', dtype: 'BF16' });
 */
export async function exportCheckpoint(o: { checkpoint: string; output: string; model?: string; dtype?: SafeDType; revision?: string }): Promise<void> {
  const problem = checkCheckpoint(o.checkpoint);
  if (problem) throw new Error(`${o.checkpoint}: not a complete checkpoint (${problem})`);
  const runConfig = join(dirname(o.checkpoint), 'train_config.json');
  const run: Partial<TrainConfig> = existsSync(runConfig) ? JSON.parse(readFileSync(runConfig, 'utf8')) : {};
  const base = o.model ?? run.model_name_or_path;
  const baseDir = base ? await resolveModel(base, { revision: o.revision ?? run.revision ?? undefined }) : undefined;
  if (!baseDir) throw new Error(`${o.checkpoint}: no train_config.json beside it; pass --model with the base model`);
  if (isWithin(baseDir, o.output)) throw new Error(`refusing to export into ${o.output}: it holds the base model ${baseDir}; choose another output folder`);
  exportModel(o.output, { baseDir, config: readConfig(baseDir), weights: checkpointWeights(o.checkpoint), pooling: run.pooling ?? 'cls', normalize: run.normalize ?? true, dtype: o.dtype });
}
