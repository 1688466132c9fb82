/**
 * Whether this machine has a WebGPU adapter for onnxruntime (a GPU's Vulkan/D3D12/Metal driver,
 * or Mesa's software Vulkan driver lavapipe: README "Devices"). Tests that need one skip with the
 * reason when there is none; under CI=true the adapter test fails instead.
 */
import { Graph } from '../src/graph/graph.js';
import * as op from '../src/graph/ops.js';
import { floatTensor, Session } from '../src/runtime/session.js';

let probe: Promise<string | false> | undefined;

/** false when WebGPU runs here, else why not (a skip reason). */
export function webgpuMissing(): Promise<string | false> {
  probe ??= (async () => {
    const g = new Graph('probe');
    g.output(op.mul(g.input('x', 'float32', [2]), g.input('y', 'float32', [2])), 'z');
    try {
      const s = await Session.create(g, { device: 'webgpu', threads: 1 });
      const out = await s.run({ x: floatTensor(Float32Array.of(2, 3), [2]), y: floatTensor(Float32Array.of(4, 5), [2]) });
      await s.release();
      const z = out.z!.data as Float32Array;
      return z[0] === 8 && z[1] === 15 ? false : `WebGPU gave ${[...z]} for 2·4, 3·5`;
    } catch (e) {
      return (e as Error).message;
    }
  })();
  return probe;
}
