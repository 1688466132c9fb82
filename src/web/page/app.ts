/**
 * The page `embedtune web` serves: pick a model and a JSONL, fine-tune with a live loss curve,
 * see base vs fine-tuned metrics on held-out queries, download the model. Also callable as
 * `window.embedtune.run(options)` (the Chromium test drives it so).
 */
import { evaluate, exportFiles, fetchModelFiles, fit, openModel, parseRecords, pickedFiles, plannedSteps, WebTrainer, zipFiles } from '../index.js';
import type { WebDevice } from '../session.js';
import type { FileMap } from '../model.js';

export interface RunOptions {
  /** A model folder's URL, or its files. */
  model: string | FileMap;
  /** A JSONL file's URL, or its text and name. */
  data: string | { text: string; name: string };
  heldOut?: number;
  epochs?: number;
  batchSize?: number;
  groupSize?: number;
  learningRate?: number;
  temperature?: number;
  /** GradCache slice (texts per encoder run); unset: one fused step. */
  miniBatchSize?: number;
  seed?: number;
  device?: WebDevice;
  /** Texts to embed with the fine-tuned weights before the trainer closes (returned as `probe`). */
  probe?: string[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const losses: number[] = [];

function drawLoss(): void {
  const c = $<HTMLCanvasElement>('loss');
  const g = c.getContext('2d')!;
  g.clearRect(0, 0, c.width, c.height);
  g.fillStyle = '#fff';
  g.fillRect(0, 0, c.width, c.height);
  g.strokeStyle = '#999';
  g.strokeRect(40, 10, c.width - 50, c.height - 40);
  g.fillStyle = '#222';
  g.fillText('loss', 5, 20);
  g.fillText('step', c.width - 40, c.height - 10);
  if (losses.length < 1) return;
  const max = Math.max(...losses);
  const min = Math.min(0, ...losses);
  g.fillText(max.toFixed(2), 5, 35);
  g.fillText(min.toFixed(2), 5, c.height - 30);
  g.strokeStyle = '#1f77b4';
  g.lineWidth = 2;
  g.beginPath();
  losses.forEach((l, i) => {
    const x = 40 + ((c.width - 50) * i) / Math.max(1, losses.length - 1);
    const y = 10 + ((c.height - 40) * (max - l)) / Math.max(1e-9, max - min);
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
}

function showMetrics(base: Record<string, number>, tuned: Record<string, number>, queries: number): void {
  const rows = Object.keys(base).filter((k) => /^(hit|mrr|ndcg)@/.test(k)).map((k) => `<tr><th>${k}</th><td>${base[k]!.toFixed(4)}</td><td>${tuned[k]!.toFixed(4)}</td></tr>`).join('');
  $('metrics').innerHTML = `<table><tr><th>${queries} held-out queries</th><th>base</th><th>fine-tuned</th></tr>${rows}</table>`;
}

/** Fine-tunes and evaluates; returns the losses, the metrics and the exported files. */
export async function run(o: RunOptions): Promise<{ losses: number[]; base: Record<string, number>; tuned: Record<string, number>; files: FileMap; stepsPerSecond: number; probe: Float32Array }> {
  losses.length = 0;
  const modelFiles = typeof o.model === 'string' ? await fetchModelFiles(o.model) : o.model;
  const model = openModel(modelFiles, typeof o.model === 'string' ? o.model : 'picked model');
  const data = typeof o.data === 'string' ? { text: await (await fetch(o.data)).text(), name: o.data } : o.data;
  const records = parseRecords(data.text, data.name);
  const cut = Math.round(records.length * (1 - (o.heldOut ?? 0.2)));
  const [trainSet, testSet] = [records.slice(0, cut), records.slice(cut)];
  const fitOptions = { epochs: o.epochs ?? 1, batchSize: o.batchSize ?? 8, groupSize: o.groupSize ?? 4, seed: o.seed ?? 42 };
  const totalSteps = plannedSteps(trainSet, fitOptions);
  const trainer = await WebTrainer.create(model, { learningRate: o.learningRate ?? 2e-5, temperature: o.temperature ?? 0.02, totalSteps, warmupSteps: Math.round(0.1 * totalSteps), device: o.device ?? 'wasm', miniBatchSize: o.miniBatchSize || undefined });
  try {
    const base = testSet.length ? (await evaluate(trainer, testSet, [1, 10])).metrics : {};
    const started = performance.now();
    await fit(trainer, trainSet, {
      ...fitOptions,
      onStep: (p) => {
        losses.push(p.loss);
        const s = (performance.now() - started) / 1000;
        const eta = (s / p.step) * (p.totalSteps - p.step);
        $('progress').textContent = `step ${p.step}/${p.totalSteps} · epoch ${p.epoch + 1} · loss ${p.loss.toFixed(4)} · ${(p.step / s).toFixed(2)} steps/s · ETA ${eta.toFixed(0)} s`;
        drawLoss();
      },
    });
    const stepsPerSecond = totalSteps / ((performance.now() - started) / 1000);
    const evaluated = testSet.length ? await evaluate(trainer, testSet, [1, 10]) : { metrics: {}, queries: 0 };
    showMetrics(base, evaluated.metrics, evaluated.queries);
    const files = exportFiles(trainer);
    const probe = (await trainer.encode(o.probe ?? [])).data;
    const link = $<HTMLAnchorElement>('download');
    link.href = URL.createObjectURL(new Blob([zipFiles(files) as Uint8Array<ArrayBuffer>], { type: 'application/zip' }));
    link.hidden = false;
    return { losses: [...losses], base, tuned: evaluated.metrics, files, stepsPerSecond, probe };
  } finally {
    await trainer.close();
  }
}

async function listInto(select: HTMLSelectElement, url: string): Promise<void> {
  const names = (await (await fetch(url)).json()) as string[];
  select.innerHTML = names.map((n) => `<option>${n}</option>`).join('');
}

async function start(): Promise<void> {
  $('error').textContent = '';
  try {
    const picked = $<HTMLInputElement>('modelFiles').files;
    const dataFile = $<HTMLInputElement>('dataFile').files?.[0];
    const num = (id: string) => Number($<HTMLInputElement>(id).value);
    await run({
      model: picked?.length ? await pickedFiles(picked) : `/models/${$<HTMLSelectElement>('model').value}/`,
      data: dataFile ? { text: await dataFile.text(), name: dataFile.name } : `/data/${$<HTMLSelectElement>('data').value}`,
      heldOut: num('heldOut'),
      epochs: num('epochs'),
      batchSize: num('batchSize'),
      groupSize: num('groupSize'),
      learningRate: num('lr'),
      temperature: num('temperature'),
      miniBatchSize: num('miniBatchSize'),
      device: $<HTMLSelectElement>('device').value as WebDevice,
    });
  } catch (e) {
    $('error').textContent = (e as Error).message;
  }
}

(window as unknown as { embedtune: unknown }).embedtune = { run };
$('start').addEventListener('click', () => void start());
void listInto($('model'), '/api/models');
void listInto($('data'), '/api/data');
drawLoss();
