/**
 * Tensors in device memory. onnxruntime-node binds `gpu-buffer` tensors for its WebGPU provider:
 * a session's output left on the device is another session's input there, with no copy through
 * JavaScript. Host tensors get there through a copy session (Identity graphs).
 */
import type ort from 'onnxruntime-node';
import { Graph } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { parseDevice } from './device.js';
import { Session, type RuntimeOptions } from './session.js';

/** Whether sessions on `device` can keep tensors in device memory between runs (WebGPU; not the CPU, nor CUDA's binding). */
export function deviceResident(device: string | undefined): boolean {
  return !!device && parseDevice(device).name === 'webgpu';
}

/** n tensors in, the same n out (Identity): run with host inputs and device outputs it uploads, the other way it downloads. */
export function copyGraph(shapes: number[][]): Graph {
  const g = new Graph('copy');
  shapes.forEach((s, i) => g.output(op.identity(g.input(`x${i}`, 'float32', s)), `y${i}`));
  return g;
}

/** Runs a copy session (copyGraph) on `ts`: its outputs, in order, where the session keeps them. */
export async function copyIn(copy: Session, ts: ort.Tensor[]): Promise<ort.Tensor[]> {
  const out = await copy.run(Object.fromEntries(ts.map((t, i) => [`x${i}`, t])));
  return ts.map((_, i) => out[`y${i}`]!);
}

/**
 * Host tensors copied into device memory once (a copy session on `runtime.device`), by name: an
 * inference session on the same device then takes them without an upload per run. The device
 * buffers belong to the copy session's allocator: `release()` (after the last run that reads
 * them) frees both.
 * @example
 *   const up = await uploadTensors({ w: floatTensor(data, [4, 4]) }, { device: 'webgpu' });
 *   await session.run({ ...up.tensors, x });
 *   await up.release();
 */
export async function uploadTensors(tensors: Record<string, ort.Tensor>, runtime: RuntimeOptions): Promise<{ tensors: Record<string, ort.Tensor>; release: () => Promise<void> }> {
  const names = Object.keys(tensors);
  const copy = await Session.create(copyGraph(names.map((n) => [...tensors[n]!.dims])), { ...runtime, deviceOutputs: () => true });
  const out = await copyIn(copy, names.map((n) => tensors[n]!)).catch(async (e) => {
    await copy.release();
    throw e;
  });
  return {
    tensors: Object.fromEntries(names.map((n, i) => [n, out[i]!])),
    release: async () => {
      for (const t of out) t.dispose();
      await copy.release();
    },
  };
}
