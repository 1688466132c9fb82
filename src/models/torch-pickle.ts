/**
 * Reads a PyTorch `torch.save` file of a plain state dict — how bge-m3 ships its sparse and
 * ColBERT heads (`sparse_linear.pt`, `colbert_linear.pt`) — without Python: the zip archive (stored
 * entries, as torch writes them), and a restricted pickle machine that knows the opcodes a state
 * dict uses and three globals (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` /
 * `_rebuild_parameter`, the `torch.*Storage` types). Any other global or opcode is refused by
 * name: a pickle can call anything, and this one may only build tensors.
 */
import { readFileSync } from 'node:fs';
import { type NamedTensor, fromHalfBits } from './safetensors.js';

interface ZipEntry {
  name: string;
  data: Uint8Array;
}

/** The stored (uncompressed) entries of a zip archive, from its central directory. */
function zipEntries(path: string, bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error(`${path}: not a zip archive (torch.save writes one); a legacy (pre-1.6) torch file is not read`);
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  if (at === 0xffffffff) throw new Error(`${path}: a zip64 archive (over 4 GiB); not read`);
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (view.getUint32(at, true) !== 0x02014b50) throw new Error(`${path}: damaged zip central directory`);
    const method = view.getUint16(at + 10, true);
    const size = view.getUint32(at + 20, true);
    const nameLen = view.getUint16(at + 28, true);
    const extraLen = view.getUint16(at + 30, true);
    const commentLen = view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLen));
    if (method !== 0) throw new Error(`${path}: entry ${name} is compressed (method ${method}); torch.save stores entries uncompressed`);
    // The data follows the local header, whose extra field (torch's alignment padding) may differ from the central one.
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (start + size > bytes.length) throw new Error(`${path}: entry ${name} runs past the end of the file`);
    entries.push({ name, data: bytes.subarray(start, start + size) });
    at += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

const STORAGES: Record<string, { bytes: number; read: (b: Uint8Array, n: number) => Float32Array }> = {
  FloatStorage: { bytes: 4, read: (b, n) => new Float32Array(b.slice(0, 4 * n).buffer) },
  DoubleStorage: { bytes: 8, read: (b, n) => Float32Array.from(new Float64Array(b.slice(0, 8 * n).buffer)) },
  HalfStorage: { bytes: 2, read: (b, n) => fromHalfBits(new Uint16Array(b.slice(0, 2 * n).buffer)) },
  // bfloat16 is float32's upper half.
  BFloat16Storage: { bytes: 2, read: (b, n) => new Float32Array(Uint32Array.from(new Uint16Array(b.slice(0, 2 * n).buffer), (h) => h << 16).buffer) },
};

type Value = unknown;
const MARK = Symbol('mark');
class Global {
  constructor(readonly name: string) {}
}
class Storage {
  constructor(readonly data: Float32Array) {}
}

/**
 * The tensors of a state dict saved with `torch.save(module.state_dict(), path)`, as float32.
 * @example const heads = readTorchStateDict('models/bge-m3/colbert_linear.pt'); // weight [1024, 1024], bias [1024]
 */
export function readTorchStateDict(path: string): Map<string, NamedTensor> {
  const entries = zipEntries(path, new Uint8Array(readFileSync(path)));
  const pkl = entries.find((e) => e.name.endsWith('/data.pkl') || e.name === 'data.pkl');
  if (!pkl) throw new Error(`${path}: no data.pkl in the archive: not a torch.save file`);
  const root = pkl.name.slice(0, -'data.pkl'.length);
  const storage = (key: string, type: string, numel: number): Storage => {
    const kind = STORAGES[type];
    if (!kind) throw new Error(`${path}: tensors of ${type} are not read (float32, float64, float16, bfloat16 are)`);
    const e = entries.find((x) => x.name === `${root}data/${key}`);
    if (!e) throw new Error(`${path}: storage ${key} is missing from the archive`);
    if (e.data.length < numel * kind.bytes) throw new Error(`${path}: storage ${key} holds ${e.data.length} bytes, ${numel * kind.bytes} expected`);
    return new Storage(kind.read(e.data, numel));
  };
  const result = unpickle(path, pkl.data, storage);
  if (!(result instanceof Map)) throw new Error(`${path}: holds a ${typeof result}, not a state dict`);
  const out = new Map<string, NamedTensor>();
  for (const [k, v] of result) {
    if (typeof k !== 'string' || !(v && typeof v === 'object' && 'shape' in v)) throw new Error(`${path}: entry ${String(k)} is not a tensor`);
    out.set(k, v as NamedTensor);
  }
  return out;
}

/** Rebuilds a tensor as `_rebuild_tensor_v2(storage, offset, size, stride, …)` does (row-major strides only). */
function rebuildTensor(path: string, args: Value[]): NamedTensor {
  const [storage, offset, size, stride] = args as [Storage, number, number[], number[]];
  if (!(storage instanceof Storage)) throw new Error(`${path}: a tensor without storage`);
  const numel = size.reduce((a, b) => a * b, 1);
  let expect = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i]! > 1 && stride[i] !== expect) throw new Error(`${path}: a non-contiguous tensor (size ${JSON.stringify(size)}, stride ${JSON.stringify(stride)}); save it .contiguous()`);
    expect *= size[i]!;
  }
  return { shape: [...size], data: storage.data.slice(offset, offset + numel) };
}

/** A pickle machine for state dicts: the opcodes `torch.save` uses for one, and no others. */
function unpickle(path: string, b: Uint8Array, storage: (key: string, type: string, numel: number) => Storage): Value {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  const text = (start: number, len: number) => new TextDecoder().decode(b.subarray(start, start + len));
  const popMark = (): Value[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) throw new Error(`${path}: damaged pickle (no mark)`);
    return stack.splice(at).slice(1);
  };
  const call = (fn: Value, args: Value[]): Value => {
    if (!(fn instanceof Global)) throw new Error(`${path}: damaged pickle (calls a ${typeof fn})`);
    if (fn.name === 'collections.OrderedDict') return new Map();
    if (fn.name === 'torch._utils._rebuild_tensor_v2') return rebuildTensor(path, args);
    if (fn.name === 'torch._utils._rebuild_parameter') return args[0];
    throw new Error(`${path}: refusing to call "${fn.name}"`);
  };
  for (let i = 0; i < b.length; ) {
    const op = b[i++]!;
    switch (op) {
      case 0x80: i++; break; // PROTO
      case 0x95: i += 8; break; // FRAME
      case 0x63: { // GLOBAL "module\nname\n"
        const nl1 = b.indexOf(10, i);
        const nl2 = b.indexOf(10, nl1 + 1);
        const name = `${text(i, nl1 - i)}.${text(nl1 + 1, nl2 - nl1 - 1)}`;
        i = nl2 + 1;
        const storageType = /^torch\.(\w+Storage)$/.exec(name);
        if (!['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter'].includes(name) && !storageType) {
          throw new Error(`${path}: refusing the pickled global "${name}" (only a plain state dict of tensors is read)`);
        }
        stack.push(new Global(name));
        break;
      }
      case 0x71: memo.set(b[i++]!, stack.at(-1)); break; // BINPUT
      case 0x72: memo.set(view.getUint32(i, true), stack.at(-1)); i += 4; break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, stack.at(-1)); break; // MEMOIZE
      case 0x68: stack.push(memo.get(b[i++]!)); break; // BINGET
      case 0x6a: stack.push(memo.get(view.getUint32(i, true))); i += 4; break; // LONG_BINGET
      case 0x28: stack.push(MARK); break; // MARK
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([stack.pop()]); break; // TUPLE1
      case 0x86: { const y = stack.pop(); stack.push([stack.pop(), y]); break; } // TUPLE2
      case 0x87: { const z = stack.pop(); const y = stack.pop(); stack.push([stack.pop(), y, z]); break; } // TUPLE3
      case 0x58: { const n = view.getUint32(i, true); stack.push(text(i + 4, n)); i += 4 + n; break; } // BINUNICODE
      case 0x8c: { const n = b[i]!; stack.push(text(i + 1, n)); i += 1 + n; break; } // SHORT_BINUNICODE
      case 0x4b: stack.push(b[i++]!); break; // BININT1
      case 0x4d: stack.push(view.getUint16(i, true)); i += 2; break; // BININT2
      case 0x4a: stack.push(view.getInt32(i, true)); i += 4; break; // BININT
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4e: stack.push(null); break; // NONE
      case 0x52: { const args = stack.pop() as Value[]; stack.push(call(stack.pop(), args)); break; } // REDUCE
      case 0x51: { // BINPERSID: ('storage', type, key, location, numel)
        const [tag, type, key, , numel] = stack.pop() as [string, Global, string, string, number];
        if (tag !== 'storage' || !(type instanceof Global)) throw new Error(`${path}: unknown persistent id ${String(tag)}`);
        stack.push(storage(key, type.name.replace(/^torch\./, ''), numel));
        break;
      }
      case 0x73: { const v = stack.pop(); const k = stack.pop(); (stack.at(-1) as Map<Value, Value>).set(k, v); break; } // SETITEM
      case 0x75: { // SETITEMS
        const items = popMark();
        const d = stack.at(-1) as Map<Value, Value>;
        for (let k = 0; k < items.length; k += 2) d.set(items[k], items[k + 1]);
        break;
      }
      case 0x61: { const v = stack.pop(); (stack.at(-1) as Value[]).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); (stack.at(-1) as Value[]).push(...items); break; } // APPENDS
      case 0x62: stack.pop(); break; // BUILD: the state dict's `_metadata` attribute, not needed
      case 0x2e: return stack.pop(); // STOP
      default: throw new Error(`${path}: pickle opcode 0x${op.toString(16)} at byte ${i - 1} is not one a state dict uses; not read`);
    }
  }
  throw new Error(`${path}: damaged pickle (no STOP)`);
}
