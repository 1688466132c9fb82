/**
 * embedtune's library API. The job functions mirror the spec's classes:
 * `clean` ↔ Clean_Query, `mine` ↔ MiningNegativeSamples, `evaluate` ↔ Embedding_Evaluation.
 *
 * @example
 *   import { Encoder, clean, mine, evaluate } from 'embedtune';
 *   await clean({ model: 'models/bge-m3', input: 'toy_source.jsonl', output: 'clean.jsonl', threshold: 0.7 });
 *   await mine({ model: 'models/bge-m3', input: 'clean.jsonl', output: 'mined.jsonl' });
 *   const { metrics } = await evaluate({ model: 'models/bge-m3', data: 'toy_dev.jsonl', negatives: 'toy_dev_neg.jsonl' });
 */
import './runtime/no-telemetry.js'; // before onnxruntime-node loads
export { Encoder, type EncoderOptions, type EncodeOptions, type Embeddings } from './models/encoder.js';
export type { Pooling } from './models/pooling.js';
export { clean, type CleanOptions, type CleanResult } from './jobs/clean.js';
export { mine, type MineOptions, type MineResult } from './jobs/mine.js';
export { evaluate, evaluateSet, type EvaluateOptions, type EvaluationResult } from './jobs/evaluate.js';
export { encodeFile, type EncodeFileOptions } from './jobs/encode.js';
export { beirToRecords } from './jobs/convert.js';
export { ExactSearch, type Vectors, type TopK } from './search/topk.js';
export { greedyDedup } from './search/dedup.js';
export { queryMetrics, meanMetrics, METRICS } from './evaluation/metrics.js';
export { loadRecords, readRecords, SkipReport, type QueryRecord } from './data/records.js';
export { loadBeir } from './data/beir.js';
export { DataError } from './data/jsonl.js';
export { openRun, Run, type RunOptions, liveResources } from './run.js';
export { progress, type Progress, type Reporter } from './progress.js';
export { COMMANDS, DEFAULTS, type CommandSpec, type OptionSpec } from './options.js';
export { train, type TrainInput, type TrainOptions, type TrainRecordInput, type TrainResult, type LogEntry } from './jobs/train.js';
export { Trainer, type TrainerOptions, type StepResult } from './training/trainer.js';
export type { TrainerSettings } from './training/library.js';
export type { TrainConfig } from './training/config.js';
export { score, type ScoreJobOptions } from './jobs/score.js';
export { exportCheckpoint } from './jobs/export.js';
export { M3Encoder, colbertScore, sparseScore, type M3Output } from './models/m3.js';
export { readM3Heads } from './models/m3-heads.js';
