/**
 * The one way outputs reach disk: written beside the target as `.<name>.<random>.tmp` and
 * renamed into place only when complete, so a reader (or a resumed run) never sees half a
 * file. A failed write removes the temp file and names the target in the error.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** Temp files and folders being written now: what an interrupted run (Ctrl-C) removes. */
const pending = new Set<string>();

/**
 * Marks a temp file or folder as being written; `settled` once it is renamed or removed.
 * @example const tmp = tracked(tempPathFor('out.bin')); try { … } finally { settled(tmp); }
 */
export function tracked(path: string): string {
  pending.add(path);
  return path;
}

export function settled(path: string): void {
  pending.delete(path);
}

/**
 * Removes every temp file and folder still being written (the CLI calls it on SIGINT/SIGTERM);
 * returns how many there were.
 * @example process.on('SIGINT', () => { removePending(); process.exit(130); });
 */
export function removePending(): number {
  const n = pending.size;
  for (const p of pending) rmSync(p, { recursive: true, force: true });
  pending.clear();
  return n;
}

/** The temp path beside `path` that an atomic write goes through. */
export function tempPathFor(path: string): string {
  return join(dirname(resolve(path)), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** `error` with the path it happened to in front, unless the message names it already. */
export function withPath(path: string, error: unknown): Error {
  const e = error as NodeJS.ErrnoException;
  if (typeof e?.message === 'string' && e.message.includes(path)) return e;
  const out = new Error(`${path}: cannot write (${e?.message ?? String(error)})`) as NodeJS.ErrnoException;
  out.code = e?.code;
  return out;
}

/**
 * Opens a temp file, lets `fill` write through the descriptor, fsyncs and renames it onto `path`.
 * @example
 *   writeAtomicSync('out.bin', (write) => { write(header); write(body); });
 */
export function writeAtomicSync(path: string, fill: (write: (bytes: Uint8Array) => void) => void): void {
  const tmp = tracked(tempPathFor(path));
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    const write = (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd!, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
    };
    fill(write);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw withPath(path, e);
  } finally {
    settled(tmp);
  }
}

/**
 * Writes a whole file through a temp file and rename.
 * @example
 *   writeFileAtomic('metrics.json', JSON.stringify(metrics));
 */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  writeAtomicSync(path, (write) => write(typeof content === 'string' ? Buffer.from(content, 'utf8') : content));
}
