/**
 * Writes a state dict as `torch.save(module.state_dict(), path)` does — how bge-m3 ships its heads
 * (`sparse_linear.pt`, `colbert_linear.pt`) and how FlagEmbedding's BGEM3FlagModel and `torch.load`
 * (weights_only too) read them: a zip archive of stored entries (`<name>/data.pkl`, one raw float32
 * storage per tensor under `<name>/data/`, version files), each storage aligned to 64 bytes, and a
 * protocol-2 pickle of an OrderedDict of `_rebuild_tensor_v2` calls with a Linear's `_metadata`.
 * The pickle is byte for byte what torch writes for the same tensors (tested against its files).
 */
import { zipStored } from '../util/zip.js';
import type { NamedTensor } from './safetensors.js';

/** A protocol-2 pickle under construction, memoising as Python's pickler does (BINPUT each new object, BINGET a repeat). */
class Pickle {
  private readonly out: number[] = [0x80, 2];
  private readonly memo = new Map<string, number>();
  private next = 0;

  byte(...b: number[]): this {
    this.out.push(...b);
    return this;
  }
  put(): this {
    const i = this.next++;
    return i < 256 ? this.byte(0x71, i) : this.byte(0x72, i & 255, (i >> 8) & 255, (i >> 16) & 255, i >>> 24);
  }
  /** A memoised object (a string or a global, by `key`): written once, fetched after. */
  private once(key: string, write: () => void): this {
    const at = this.memo.get(key);
    if (at !== undefined) return at < 256 ? this.byte(0x68, at) : this.byte(0x6a, at & 255, (at >> 8) & 255, (at >> 16) & 255, at >>> 24);
    write();
    this.memo.set(key, this.next);
    return this.put();
  }
  str(s: string, memoise = true): this {
    const b = new TextEncoder().encode(s);
    const write = () => this.byte(0x58, b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, b.length >>> 24, ...b);
    return memoise ? this.once(`s:${s}`, write) : (write(), this.put());
  }
  global(module: string, name: string): this {
    return this.once(`g:${module}.${name}`, () => this.byte(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`)));
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.byte(0x4b, n);
    if (n >= 0 && n < 65536) return this.byte(0x4d, n & 255, n >> 8);
    return this.byte(0x4a, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255);
  }
  /** A tuple of ints (TUPLE1/2/3 as Python writes short ones), memoised. */
  ints(xs: number[]): this {
    if (xs.length === 0) return this.byte(0x29);
    if (xs.length > 3) this.byte(0x28);
    xs.forEach((x) => this.int(x));
    this.byte(xs.length > 3 ? 0x74 : [0x85, 0x86, 0x87][xs.length - 1]!);
    return this.put();
  }
  /** A fresh OrderedDict(): GLOBAL (memoised), EMPTY_TUPLE, REDUCE. */
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').byte(0x29, 0x52).put();
  }
  bytes(): Uint8Array {
    return Uint8Array.from([...this.out, 0x2e]);
  }
}

/** The data.pkl of an OrderedDict of float32 tensors (storage i holds tensor i), with a Linear's `_metadata`. */
export function stateDictPickle(tensors: { name: string; shape: number[] }[]): Uint8Array {
  const p = new Pickle();
  p.orderedDict().byte(0x28); // MARK
  tensors.forEach((t, i) => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    p.str(t.name).global('torch._utils', '_rebuild_tensor_v2').byte(0x28, 0x28); // MARK MARK
    p.str('storage').global('torch', 'FloatStorage').str(String(i), false).str('cpu').int(numel).byte(0x74);
    p.put().byte(0x51); // TUPLE memoised, BINPERSID
    p.int(0).ints(t.shape).ints(stride).byte(0x89); // storage offset, size, stride, requires_grad False
    p.orderedDict().byte(0x74).put().byte(0x52).put(); // backward hooks; TUPLE, REDUCE
  });
  p.byte(0x75); // SETITEMS
  // _metadata = OrderedDict({'': {'version': 1}}), set by BUILD
  p.byte(0x7d).put().str('_metadata').orderedDict().str('').byte(0x7d).put().str('version').int(1);
  p.byte(0x73, 0x73, 0x73, 0x62); // SETITEM ×3, BUILD
  return p.bytes();
}

/**
 * The bytes of `torch.save(state_dict, '<archive>.pt')` for float32 `tensors` (in order).
 * @example writeFileAtomic('out/colbert_linear.pt', torchStateDictBytes(new Map([['weight', w], ['bias', b]]), 'colbert_linear'));
 */
export function torchStateDictBytes(tensors: Map<string, NamedTensor>, archive: string): Uint8Array {
  const list = [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: Float32Array.from(t.data) }));
  const raw = (x: Float32Array) => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const text = (s: string) => new TextEncoder().encode(s);
  return zipStored([
    { name: `${archive}/data.pkl`, data: stateDictPickle(list) },
    { name: `${archive}/.format_version`, data: text('1') },
    { name: `${archive}/.storage_alignment`, data: text('64') },
    { name: `${archive}/byteorder`, data: text('little') },
    ...list.map((t, i) => ({ name: `${archive}/data/${i}`, data: raw(t.data) })),
    { name: `${archive}/version`, data: text('3\n') },
  ]);
}
