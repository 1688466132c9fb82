/**
 * embedtune in the browser (`embedtune/web`): load a model from a URL or the user's files,
 * fine-tune it contrastively on records in memory, evaluate, and export — on onnxruntime-web,
 * with the Node build's graphs, tokenizers, sampler, optimizer and metrics. Nothing leaves
 * the machine.
 * @example
 *   import { fetchModelFiles, openModel, parseRecords, train, exportFiles } from 'embedtune/web';
 *   const model = openModel(await fetchModelFiles('/models/tiny-bert/'), 'tiny-bert');
 *   const trainer = await train(model, parseRecords(jsonlText, 'train.jsonl'), { epochs: 1 });
 *   const files = exportFiles(trainer);
 */
export { fetchModelFiles, type FileMap, memoryFolder, openModel, pickedFiles, type WebModel } from './model.js';
export { WebTrainer, type WebTrainOptions } from './trainer.js';
export { exportFiles, zipFiles } from './export.js';
export { evaluate, fit, type FitOptions, parseRecords, plannedSteps, train, type TrainProgress } from './run.js';
export { WebSession, type WebDevice } from './session.js';
export { epochBatches } from '../training/sampler.js';
export { Rng } from '../util/rng.js';
