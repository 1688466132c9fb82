/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the raw bytes. We read F32, F16
 * and BF16 into Float32Array and write F32.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** Reads every tensor of a safetensors file as float32. */
export function readSafetensors(path: string): Map<string, NamedTensor> {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new Error(`${path}: not a safetensors file (only ${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > size - 8 || headerLen > 100_000_000) {
      throw new Error(`${path}: header length ${headerLen} exceeds the file (${size} bytes): truncated or not safetensors`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, HeaderEntry | Record<string, string>>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch {
      throw new Error(`${path}: safetensors header is not valid JSON`);
    }
    const base = 8 + headerLen;
    const out = new Map<string, NamedTensor>();
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const entry = raw as HeaderEntry;
      const width = BYTES[entry.dtype];
      if (!width) throw new Error(`${path}: tensor ${name} has dtype ${entry.dtype}; only F32, F16 and BF16 are supported`);
      const [begin, end] = entry.data_offsets;
      const count = entry.shape.reduce((a, b) => a * b, 1);
      if (end - begin !== count * width) throw new Error(`${path}: tensor ${name} has ${end - begin} bytes for shape [${entry.shape}]`);
      if (base + end > size) {
        throw new Error(`${path}: truncated: tensor ${name} ends at byte ${base + end} but the file has ${size} bytes`);
      }
      const bytes = Buffer.alloc(end - begin);
      readSync(fd, bytes, 0, end - begin, base + begin);
      out.set(name, { shape: entry.shape, data: toFloat32(bytes, entry.dtype, count) });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function toFloat32(bytes: Buffer, dtype: string, count: number): Float32Array {
  const out = new Float32Array(count);
  if (dtype === 'F32') {
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const halves = new Uint16Array(count);
  new Uint8Array(halves.buffer).set(bytes);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
    return out;
  }
  for (let i = 0; i < count; i++) out[i] = halfToFloat(halves[i]);
  return out;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Serialises float32 tensors as a safetensors file (keys sorted, 8-byte aligned header). */
export function encodeSafetensors(tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}): Buffer {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${name}: shape [${t.shape}] does not match ${t.data.length} values`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}
