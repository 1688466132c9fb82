/** export: a training checkpoint → a model folder (the same layout `train` writes at the end). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isWithin } from '../util/paths.js';
import { isDecoder, readConfig } from '../models/config.js';
import { loadWeights, savedPooling } from '../models/encoder.js';
import { QWEN3_TASK } from '../models/prompts.js';
import { ADAPTER, mergeAdapters, writeAdapter } from '../training/lora.js';
import { loraOptions, trainingTemplates } from './train.js';
import { exportModel } from '../models/export.js';
import { checkCheckpoint, checkpointWeights } from '../training/checkpoint.js';
import type { SafeDType } from '../models/safetensors.js';
import { resolveModel } from '../models/resolve.js';
import type { TrainConfig } from '../training/config.js';

/**
 * @example
 *   await exportCheckpoint({ checkpoint: 'runs/ft/checkpoint-200', output: 'models/ft-200', dtype: 'BF16' });
 */
export interface ExportJobOptions {
  /** A checkpoint-N folder of a train run. */
  checkpoint: string;
  /** Where to write the model. */
  output: string;
  /** The base model (default: from the run's train_config.json). */
  model?: string;
  /** model.safetensors storage (default: the base model's). */
  dtype?: SafeDType;
  revision?: string;
  /** A LoRA run: the adapter alone, in PEFT's layout. */
  adapterOnly?: boolean;
  /** Replace the output folder even if it is not an earlier embedtune export. */
  overwrite?: boolean;
}

export async function exportCheckpoint(o: ExportJobOptions): Promise<void> {
  const problem = checkCheckpoint(o.checkpoint);
  if (problem) throw new Error(`${o.checkpoint}: not a complete checkpoint (${problem})`);
  const runConfig = join(dirname(o.checkpoint), 'train_config.json');
  const run: Partial<TrainConfig> = existsSync(runConfig) ? JSON.parse(readFileSync(runConfig, 'utf8')) : {};
  const base = o.model ?? run.model_name_or_path;
  const baseDir = base ? await resolveModel(base, { revision: o.revision ?? run.revision ?? undefined }) : undefined;
  if (!baseDir) throw new Error(`${o.checkpoint}: no train_config.json beside it; pass --model with the base model`);
  if (isWithin(baseDir, o.output)) throw new Error(`refusing to export into ${o.output}: it holds the base model ${baseDir}; choose another output folder`);
  const config = readConfig(baseDir);
  const weights = checkpointWeights(o.checkpoint);
  const adapters = [...weights.keys()].some((n) => ADAPTER.test(n));
  if (o.adapterOnly) {
    if (!adapters) throw new Error(`${o.checkpoint}: --adapter-only, but this checkpoint holds no LoRA adapter (the run did not set "lora": true)`);
    writeAdapter(o.output, weights, loraOptions(run as TrainConfig, config), base!);
    return;
  }
  const merged = adapters ? mergeAdapters(new Map([...loadWeights(baseDir), ...weights]), (run.lora_alpha ?? 16) / (run.lora_rank ?? 8), config) : weights;
  const full = { ...run, pooling: run.pooling ?? null, query_template: run.query_template ?? null, passage_template: run.passage_template ?? null, template_preset: run.template_preset ?? null, task_description: run.task_description ?? QWEN3_TASK } as TrainConfig;
  exportModel(o.output, {
    baseDir,
    config,
    weights: merged,
    pooling: run.pooling ?? savedPooling(baseDir) ?? (isDecoder(config) ? 'last' : 'cls'),
    normalize: run.normalize ?? true,
    dtype: o.dtype,
    overwrite: o.overwrite,
    templates: trainingTemplates(full, baseDir),
  });
}
