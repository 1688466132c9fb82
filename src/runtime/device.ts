/**
 * Where sessions run: `cpu` (default), `cuda[:i]`, `webgpu`, `dml[:i]` (Windows), `coreml`
 * (macOS) — onnxruntime-node's execution providers. Which ones a machine has depends on the
 * onnxruntime-node install: the CPU and WebGPU providers ship in the npm package; the CUDA
 * provider is downloaded by its install script (`ONNXRUNTIME_NODE_INSTALL=cuda12`), which npm 11
 * runs only when approved and which this repository's `.npmrc` skips. A missing provider is
 * refused with that advice; ops a provider lacks fall back to the CPU inside onnxruntime.
 */
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';

export interface Device {
  name: 'cpu' | 'cuda' | 'webgpu' | 'dml' | 'coreml';
  index?: number;
  /** As the user wrote it, for messages. */
  spec: string;
}

const NAMES = ['cpu', 'cuda', 'webgpu', 'dml', 'coreml'] as const;
const INDEXED = new Set(['cuda', 'dml']);

/**
 * @example parseDevice('cuda:1'); // { name: 'cuda', index: 1, spec: 'cuda:1' }
 */
export function parseDevice(spec: string): Device {
  const m = /^([a-z]+)(?::(\d+))?$/.exec(spec.trim());
  const name = m?.[1] as Device['name'] | undefined;
  if (!m || !name || !NAMES.includes(name) || (m[2] !== undefined && !INDEXED.has(name))) {
    throw new Error(`--device "${spec}": expected cpu, cuda[:i], webgpu, dml[:i] or coreml`);
  }
  return { name, index: m[2] === undefined ? undefined : Number(m[2]), spec };
}

const INSTALL_ADVICE: Record<string, string> = {
  cuda:
    'install onnxruntime-node with its CUDA binaries: delete the `onnxruntime-node-install-cuda=skip` line of .npmrc, then `ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node --foreground-scripts` (npm 11 runs a dependency\'s install script only once allowed: `npm install-scripts approve onnxruntime-node`), with CUDA 12 and cuDNN 9 on the library path',
  dml: 'DirectML is in the Windows build of onnxruntime-node only',
  coreml: 'CoreML is in the macOS build of onnxruntime-node only',
  webgpu: 'the WebGPU provider needs a GPU with Vulkan (Linux), D3D12 (Windows) or Metal (macOS) drivers; without a GPU, Mesa 25\'s software Vulkan driver serves (Debian 12: apt-get install -t bookworm-backports mesa-vulkan-drivers; README "Devices")',
};

/** The provider libraries onnxruntime-node ships or installed for this platform. */
function installedProviders(): string[] {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve('onnxruntime-node/package.json'));
  const bin = join(root, 'bin', 'napi-v6', process.platform, process.arch);
  return existsSync(bin) ? readdirSync(bin) : [];
}

/**
 * The session option for `device`, after checking onnxruntime-node has its provider.
 * @example executionProviders(parseDevice('cpu')); // undefined: onnxruntime's default
 */
export function executionProviders(device: Device): ort.InferenceSession.ExecutionProviderConfig[] | undefined {
  if (device.name === 'cpu') return undefined;
  const installed = installedProviders();
  const usable = (ort.listSupportedBackends?.() ?? []).filter((b) => b.bundled || installed.some((f) => f.includes(`providers_${b.name}`))).map((b) => b.name);
  if (!usable.includes(device.name)) {
    throw new Error(`--device ${device.spec}: this onnxruntime-node (${process.platform}/${process.arch}) has no ${device.name} provider (it has: ${usable.join(', ')}); ${INSTALL_ADVICE[device.name]}`);
  }
  return [device.index === undefined ? device.name : ({ name: device.name, deviceId: device.index } as ort.InferenceSession.ExecutionProviderConfig)];
}

/**
 * An onnxruntime failure to start a session on `device`, said in terms of the device.
 * @example throw deviceError(parseDevice('cuda:7'), e); // "--device cuda:7: onnxruntime could not run a session there (…)"
 */
export function deviceError(device: Device, e: unknown): Error {
  const first = (e as Error).message.split('\n')[0]!;
  // onnxruntime's check failures read "<source path>:<line> <function> <condition> was false. <why>"
  const why = / was false\. (.*)$/.exec(first)?.[1] ?? first;
  return new Error(`--device ${device.spec}: onnxruntime could not run a session there (${why}); ${INSTALL_ADVICE[device.name] ?? ''}`.replace(/; $/, ''));
}

/**
 * The most onnxruntime threads a run may ask for in all: 4 per core. Past that nothing gets
 * faster, and 100,000 threads (or 1,000 workers) leave the machine thrashing for hours.
 */
export const MAX_THREADS_PER_CORE = 4;

/**
 * Refuses `n` threads in all past MAX_THREADS_PER_CORE per core of this machine, naming `what`.
 * @example checkThreads(8, '--threads'); // 8 (on a machine with 2 or more cores)
 */
export function checkThreads(n: number, what: string): number {
  const cores = availableParallelism();
  if (n > MAX_THREADS_PER_CORE * cores) {
    throw new Error(`${what}: ${n} threads in all on a machine with ${cores} core${cores === 1 ? '' : 's'}; at most ${MAX_THREADS_PER_CORE * cores} (${MAX_THREADS_PER_CORE} per core)`);
  }
  return n;
}
