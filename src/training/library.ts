/**
 * The trainer for TypeScript programs: `Trainer.create(model, settings)` loads a model by folder,
 * alias or Hub id and fills in the settings a program leaves out (as the `train` job's config
 * does); the trainer then steps, evaluates, saves, restores and exports (see trainer.ts).
 */
import { isBeirFolder, loadBeir } from '../data/beir.js';
import { evaluateSet, type EvaluationResult, type RetrievalSet, specRetrievalSet } from '../jobs/evaluate.js';
import { isDecoder, readConfig } from '../models/config.js';
import { loadWeights, positionLimit, requireEndToken, requireVocabulary } from '../models/encoder.js';
import { exportModel } from '../models/export.js';
import { asTemplate, readTemplates, type Templates } from '../models/prompts.js';
import { resolveModel } from '../models/resolve.js';
import { savedPooling } from '../models/st-config.js';
import type { Pooling } from '../models/pooling.js';
import { loadTokenizer } from '../models/tokenizer.js';
import { withWeightFiles } from '../models/weights.js';
import { DEFAULTS } from './config.js';
import { loadCheckpoint, type TrainState, writeCheckpoint } from './checkpoint.js';
import type { Trainer, TrainerOptions } from './trainer.js';

/** What `Trainer.create` takes: any TrainerOptions (defaults as the train config's), and the Hub revision. */
export type TrainerSettings = Partial<TrainerOptions> & { revision?: string };

/** What a trainer made by `Trainer.create` remembers of its model, for evaluate() and export(). */
export interface TrainerSource {
  dir: string;
  templates: Templates;
}

/**
 * A model folder read for training: config, tokenizer, its token limit, and the pooling (given,
 * else the saved one, else CLS — last token for decoders), checked against each other.
 */
export function trainingModel(dir: string, pooling?: Pooling | null) {
  const config = readConfig(dir);
  const tokenizer = loadTokenizer(dir);
  const limit = Math.min(tokenizer.modelMaxLength, positionLimit(config));
  const chosen: Pooling = pooling ?? savedPooling(dir) ?? (isDecoder(config) ? 'last' : 'cls');
  requireEndToken(config, tokenizer, chosen, dir);
  requireVocabulary(config, tokenizer, dir);
  return { config, tokenizer, limit, pooling: chosen };
}

/** Builds the trainer `Trainer.create` returns: the model resolved and checked, every unset setting defaulted. */
export async function createTrainer(make: typeof Trainer.fromWeights, model: string, s: TrainerSettings): Promise<{ trainer: Trainer; source: TrainerSource }> {
  const dir = await resolveModel(model, { revision: s.revision });
  const { config, tokenizer, limit, pooling } = trainingModel(dir, s.pooling);
  const saved = readTemplates(dir);
  const templates = { query: asTemplate(s.queryTemplate ?? saved.query ?? '{text}'), passage: asTemplate(s.passageTemplate ?? saved.passage ?? '{text}') };
  const d = DEFAULTS;
  const options: TrainerOptions = {
    ...s,
    pooling,
    normalize: s.normalize ?? d.normalize,
    temperature: s.temperature ?? d.embedding_temperature,
    learningRate: s.learningRate ?? d.learning_rate,
    weightDecay: s.weightDecay ?? d.weight_decay,
    warmupSteps: s.warmupSteps ?? d.warmup_steps,
    totalSteps: s.totalSteps ?? 1000,
    schedule: s.schedule ?? d.lr_scheduler_type,
    maxGradNorm: s.maxGradNorm ?? d.max_grad_norm,
    maxQueryLength: Math.min(s.maxQueryLength ?? d.max_query_len, limit),
    maxPassageLength: Math.min(s.maxPassageLength ?? d.max_passage_len, limit),
    queryTemplate: templates.query,
    passageTemplate: templates.passage,
  };
  const weights = loadWeights(dir);
  const trainer = await withWeightFiles(dir, () => make(config, tokenizer, weights, options));
  return { trainer, source: { dir, templates } };
}

/** Metrics of the trainer's current weights on `set`: a retrieval set, a BEIR folder or a query–positive JSONL. */
export async function evaluateTrainer(trainer: Trainer, source: TrainerSource, set: RetrievalSet | string, ks: number[]): Promise<EvaluationResult> {
  const data = typeof set !== 'string' ? set : isBeirFolder(set) ? await loadBeir(set) : await specRetrievalSet(set);
  await using encoder = await trainer.encoder(source.dir);
  const o = trainer.o;
  return await evaluateSet({ model: encoder, quiet: true, queryTemplate: source.templates.query, passageTemplate: source.templates.passage, maxQueryLength: o.maxQueryLength, maxPassageLength: o.maxPassageLength }, data, ks);
}

/** Writes the trainer's weights as a model folder (Hugging Face + sentence-transformers + ONNX). */
export async function exportTrainer(trainer: Trainer, source: TrainerSource, dir: string): Promise<void> {
  exportModel(dir, { baseDir: source.dir, config: trainer.config, weights: await trainer.hfWeights(), pooling: trainer.o.pooling, normalize: trainer.o.normalize, templates: source.templates });
}

/** A checkpoint folder of the trainer's weights and AdamW moments; `restoreTrainer` reads it back. */
export async function saveTrainer(trainer: Trainer, dir: string): Promise<string> {
  const state: TrainState = { step: trainer.optimizer.step, epoch: 0, batchInEpoch: 0, epochRng: 0, bestMetric: null };
  return writeCheckpoint(dir, trainer, state);
}

export async function restoreTrainer(trainer: Trainer, dir: string): Promise<void> {
  await loadCheckpoint(dir, trainer);
}
