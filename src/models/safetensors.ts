/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the raw bytes. We read F32, F16
 * and BF16 into Float32Array and write F32, F16 or BF16. Both directions go tensor by tensor
 * in bounded pieces, straight between the file and the Float32Arrays the model uses: no
 * Buffer ever holds a whole file, so files of any size (bge-m3: 2.3 GB) read and write.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { writeAtomicSync } from '../util/atomic.js';
import { CHUNK, checkFinite, halfToFloat, headerBytes, type HeaderEntry, type NamedTensor, parseHeader, type SafeDType, type SafetensorsHeader, tensorChunks } from './safetensors-format.js';

export * from './safetensors-format.js';

/** Reads and checks a safetensors header: every tensor's dtype, byte count and range in the file. */
export function readHeader(path: string, fd?: number): SafetensorsHeader {
  const own = fd === undefined;
  const f = fd ?? openSync(path, 'r');
  try {
    const stat = fstatSync(f);
    if (!stat.isFile()) throw new Error(`${path}: ${stat.isDirectory() ? 'a folder' : 'not a file'}, not a safetensors file`);
    const size = stat.size;
    if (size < 8) throw new Error(`${path}: not a safetensors file (only ${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    readSync(f, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > size - 8 || headerLen > 100_000_000) {
      throw new Error(`${path}: header length ${headerLen} exceeds the file (${size} bytes): truncated or not safetensors`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(f, headerBuf, 0, headerLen, 8);
    const { tensors, metadata } = parseHeader(headerBuf.toString('utf8'), headerLen, size, path);
    return { path, tensors, metadata, size };
  } finally {
    if (own) closeSync(f);
  }
}

/** Reads `entry` from `fd` into `target` (float32), converting half types piece by piece, and checks every value is finite. */
function readInto(fd: number, entry: HeaderEntry, target: Float32Array): void {
  readRaw(fd, entry, target);
  checkFinite(target);
}

function readRaw(fd: number, entry: HeaderEntry, target: Float32Array): void {
  const count = entry.shape.reduce((a, b) => a * b, 1);
  if (target.length !== count) throw new Error(`tensor of shape [${entry.shape}] does not fit ${target.length} floats`);
  if (entry.dtype === 'F32') {
    const bytes = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
    for (let done = 0; done < bytes.length; ) {
      const n = readSync(fd, bytes, done, Math.min(CHUNK, bytes.length - done), entry.begin + done);
      if (n === 0) throw new Error('unexpected end of file');
      done += n;
    }
    return;
  }
  const halves = new Uint16Array(Math.min(count, CHUNK / 2));
  const bytes = new Uint8Array(halves.buffer);
  const bits = new Uint32Array(target.buffer, target.byteOffset, target.length);
  for (let start = 0; start < count; start += halves.length) {
    const n = Math.min(halves.length, count - start);
    for (let done = 0; done < 2 * n; ) {
      const r = readSync(fd, bytes, done, 2 * n - done, entry.begin + 2 * start + done);
      if (r === 0) throw new Error('unexpected end of file');
      done += r;
    }
    if (entry.dtype === 'BF16') for (let i = 0; i < n; i++) bits[start + i] = halves[i]! << 16;
    else for (let i = 0; i < n; i++) target[start + i] = halfToFloat(halves[i]!);
  }
}

/**
 * Reads tensors of a safetensors file as float32 (all, or those `want` accepts).
 * @example
 *   const weights = readSafetensors('models/bge-m3/model.safetensors');
 */
export function readSafetensors(path: string, want: (name: string) => boolean = () => true): Map<string, NamedTensor> {
  const fd = openSync(path, 'r');
  try {
    const header = readHeader(path, fd);
    const out = new Map<string, NamedTensor>();
    for (const [name, entry] of header.tensors) {
      if (!want(name)) continue;
      const data = new Float32Array(entry.shape.reduce((a, b) => a * b, 1));
      try {
        readInto(fd, entry, data);
      } catch (e) {
        throw new Error(`${path}: tensor ${name}: ${(e as Error).message}`);
      }
      out.set(name, { shape: entry.shape, data });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads tensors straight into existing buffers: `targets` maps file names to the Float32Arrays
 * to fill. A name missing from the file or of another size is an error naming both.
 */
export function readSafetensorsInto(path: string, targets: Map<string, Float32Array>): void {
  const fd = openSync(path, 'r');
  try {
    const header = readHeader(path, fd);
    for (const [name, target] of targets) {
      const entry = header.tensors.get(name);
      if (!entry) throw new Error(`${path}: no tensor ${name}`);
      try {
        readInto(fd, entry, target);
      } catch (e) {
        throw new Error(`${path}: tensor ${name}: ${(e as Error).message}`);
      }
    }
  } finally {
    closeSync(fd);
  }
}

export interface WriteOptions {
  /** Storage type of every tensor (default F32). */
  dtype?: SafeDType;
  metadata?: Record<string, string>;
}

/**
 * Writes tensors (keys sorted, 8-byte aligned header) to `path` through a temp file, streamed in
 * pieces of at most 64 MiB; a failed write (a full disk) removes the temp file and names `path`.
 * @example
 *   writeSafetensors('out/model.safetensors', weights, { dtype: 'BF16' });
 */
export function writeSafetensors(path: string, tensors: Map<string, NamedTensor>, o: WriteOptions = {}): void {
  const dtype = o.dtype ?? 'F32';
  const names = [...tensors.keys()].sort();
  const { bytes } = headerBytes(names, tensors, dtype, o.metadata ?? {});
  writeAtomicSync(path, (write) => {
    write(bytes);
    for (const name of names) for (const chunk of tensorChunks(tensors.get(name)!.data, dtype)) write(chunk);
  });
}

