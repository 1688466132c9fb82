/**
 * The safetensors format in memory, with no file system: the header's checks, half-precision
 * conversions, and whole-buffer encode / decode (the browser build reads and writes models
 * this way). `safetensors.ts` streams files with the same pieces.
 */

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export type SafeDType = 'F32' | 'F16' | 'BF16';

export interface HeaderEntry {
  dtype: SafeDType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  tensors: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
  /** File size in bytes. */
  size: number;
}

export const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
/** Bytes moved per read or write call. */
export const CHUNK = 64 << 20;

/**
 * Checks a safetensors header (its JSON text, `headerLen` bytes after the 8-byte length, in a
 * buffer of `size` bytes): every tensor's dtype, byte count and range; `path` names the source.
 */
export function parseHeader(text: string, headerLen: number, size: number, path: string): { tensors: Map<string, HeaderEntry>; metadata: Record<string, string> } {
  let raw: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${path}: safetensors header is not valid JSON`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: the safetensors header is ${JSON.stringify(raw)}, not an object of tensors`);
  const base = 8 + headerLen;
  const tensors = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path}: tensor ${name} is ${JSON.stringify(value)} in the header, not {dtype, shape, data_offsets}`);
    const e = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const width = BYTES[e.dtype];
    if (!width) throw new Error(`${path}: tensor ${name} has dtype ${e.dtype}; only F32, F16 and BF16 are supported`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((x) => Number.isSafeInteger(x) && x >= 0) || offsets[0] > offsets[1]) {
      throw new Error(`${path}: tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`${path}: tensor ${name} has invalid shape ${JSON.stringify(e.shape)}`);
    const [begin, end] = offsets;
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * width) throw new Error(`${path}: tensor ${name} has ${end - begin} bytes for shape [${e.shape}]`);
    if (base + end > size) throw new Error(`${path}: truncated: tensor ${name} ends at byte ${base + end} but the file has ${size} bytes`);
    tensors.set(name, { dtype: e.dtype as SafeDType, shape: e.shape, begin: base + begin, end: base + end });
  }
  const ranges = [...tensors].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![1].begin < ranges[i - 1]![1].end) throw new Error(`${path}: tensors ${ranges[i - 1]![0]} and ${ranges[i]![0]} overlap in the file`);
  }
  return { tensors, metadata };
}

/** Throws naming the first NaN or infinite value: a broken file must not turn into NaN embeddings. */
export function checkFinite(target: Float32Array): void {
  for (let i = 0; i < target.length; i++) {
    const x = target[i];
    if (x! - x! !== 0) throw new Error(`value ${x} at index ${i}: weights must be finite`);
  }
}

/**
 * Every tensor of a safetensors file held in memory, as float32 (F16 and BF16 widened).
 * @example
 *   const weights = decodeSafetensors(new Uint8Array(await (await fetch(url)).arrayBuffer()), url);
 */
export function decodeSafetensors(bytes: Uint8Array, path = 'model.safetensors'): Map<string, NamedTensor> {
  if (bytes.length < 8) throw new Error(`${path}: not a safetensors file (only ${bytes.length} bytes)`);
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLen > bytes.length - 8 || headerLen > 100_000_000) throw new Error(`${path}: header length ${headerLen} exceeds the file (${bytes.length} bytes): truncated or not safetensors`);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  const { tensors } = parseHeader(text, headerLen, bytes.length, path);
  const out = new Map<string, NamedTensor>();
  for (const [name, e] of tensors) {
    const raw = bytes.slice(e.begin, e.end); // a copy: aligned for the typed arrays below
    let data: Float32Array;
    if (e.dtype === 'F32') data = new Float32Array(raw.buffer);
    else if (e.dtype === 'F16') data = fromHalfBits(new Uint16Array(raw.buffer));
    else data = new Float32Array(Uint32Array.from(new Uint16Array(raw.buffer), (h) => h << 16).buffer);
    try {
      checkFinite(data);
    } catch (err) {
      throw new Error(`${path}: tensor ${name}: ${(err as Error).message}`);
    }
    out.set(name, { shape: e.shape, data });
  }
  return out;
}

/** float32 values as IEEE half bits, element by element (no intermediate list: any size). */
export function toHalfBits(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]!);
  return out;
}

/** IEEE half bits as float32 values, element by element. */
export function fromHalfBits(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]!);
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

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 bits, rounding to nearest even (as torch's `.to(torch.bfloat16)`). */
export function floatToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b! & 0x7f800000) === 0x7f800000 && b! & 0x7fffff) return ((b! >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((b! + 0x7fff + ((b! >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 → IEEE half bits, rounding to nearest even; overflow gives ±Infinity. */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b! >>> 16) & 0x8000;
  const exp = (b! >>> 23) & 0xff;
  let mant = b! & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function headerBytes(names: string[], tensors: Map<string, NamedTensor>, dtype: SafeDType, metadata: Record<string, string>): { bytes: Uint8Array; dataBytes: number } {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${name}: shape [${t.shape}] does not match ${t.data.length} values`);
    const length = count * BYTES[dtype]!;
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  json += ' '.repeat((8 - ((encoder.encode(json).length + 8) % 8)) % 8);
  const body = encoder.encode(json);
  const bytes = new Uint8Array(8 + body.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(body.length), true);
  bytes.set(body, 8);
  return { bytes, dataBytes: offset };
}

/** Yields a tensor's bytes in `dtype`, at most CHUNK bytes at a time. */
export function* tensorChunks(data: Float32Array, dtype: SafeDType): Generator<Uint8Array> {
  if (dtype === 'F32') {
    for (let start = 0; start < data.length; start += CHUNK / 4) {
      const part = data.subarray(start, Math.min(data.length, start + CHUNK / 4));
      yield new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
    }
    return;
  }
  const convert = dtype === 'BF16' ? floatToBf16 : floatToHalf;
  const halves = new Uint16Array(Math.min(data.length, CHUNK / 2));
  for (let start = 0; start < data.length; start += halves.length) {
    const n = Math.min(halves.length, data.length - start);
    for (let i = 0; i < n; i++) halves[i] = convert(data[start + i]!);
    yield new Uint8Array(halves.buffer, 0, 2 * n);
  }
}

/** Serialises float32 tensors into one buffer (the browser's export, tests); files use writeSafetensors. */
export function encodeSafetensors(tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const { bytes, dataBytes } = headerBytes(names, tensors, 'F32', metadata);
  if (bytes.length + dataBytes > 1 << 30) throw new Error('encodeSafetensors: over 1 GiB; use writeSafetensors');
  const out = new Uint8Array(bytes.length + dataBytes);
  out.set(bytes, 0);
  let pos = bytes.length;
  for (const name of names) for (const chunk of tensorChunks(tensors.get(name)!.data, 'F32')) {
    out.set(chunk, pos);
    pos += chunk.byteLength;
  }
  return out;
}

/** The storage dtype of tensors: the most common one, by bytes (F32 when there are none). */
export function mainDType(entries: Iterable<HeaderEntry>): SafeDType {
  const bytes = new Map<SafeDType, number>();
  for (const e of entries) bytes.set(e.dtype, (bytes.get(e.dtype) ?? 0) + e.end - e.begin);
  return [...bytes].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
}
