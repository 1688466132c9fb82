/**
 * The one way outputs reach disk — files, streamed files, several files together, folders:
 * written beside the target as `.<name>.<random>.tmp`, synced to disk, and renamed into place
 * only when complete, so a reader (or a resumed run) never sees half a file, and a power cut
 * never leaves a renamed file whose bytes were not written. A failed write removes the temp
 * file and names the target in the error. No other module renames an output (a test checks).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync, type WriteStream } from 'node:fs';
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

/** How many temp files and folders are being written now. */
export function pendingCount(): number {
  return pending.size;
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
    syncPath(dirname(resolve(path)));
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

/**
 * Writes lines to `<dir>/.<name>.<random>.tmp` and renames it onto `path` in `commit()`.
 * `abort()` removes the temp file. Readers never see a half-written output.
 */
export class AtomicWriter {
  private readonly tmp: string;
  private readonly stream: WriteStream;
  private failed: Error | undefined;

  constructor(readonly path: string) {
    this.tmp = tracked(tempPathFor(path));
    this.stream = createWriteStream(this.tmp);
    this.stream.on('error', (e) => (this.failed = withPath(this.path, e)));
  }

  async write(text: string | Uint8Array): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.stream.write(text)) return;
    // Wait for room, or for the error (a missing directory, a full disk) that means there never will be.
    await new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => {
        this.stream.off('drain', done).off('error', done);
        if (e) reject(withPath(this.path, e));
        else resolve();
      };
      this.stream.on('drain', done).on('error', done);
    });
  }

  async writeBytes(bytes: Uint8Array): Promise<void> {
    await this.write(bytes);
  }

  async writeJson(value: unknown): Promise<void> {
    await this.write(JSON.stringify(value) + '\n');
  }

  async commit(): Promise<void> {
    await this.finish();
    this.publish();
  }

  /** Completes the temp file (everything written, closed and synced to disk) without renaming it. */
  async finish(): Promise<void> {
    if (this.failed) throw this.failed;
    await new Promise<void>((res, rej) => this.stream.end((e?: Error | null) => (e ? rej(withPath(this.path, e)) : res())));
    if (this.failed) throw this.failed;
    try {
      syncTree(this.tmp);
    } catch (e) {
      throw withPath(this.path, e);
    }
  }

  /** Renames the finished temp file onto the output path (and syncs the folder holding it). */
  publish(): void {
    renameSync(this.tmp, this.path);
    syncPath(dirname(resolve(this.path)));
    settled(this.tmp);
  }

  abort(): void {
    this.stream.destroy();
    rmSync(this.tmp, { force: true });
    settled(this.tmp);
  }
}

/** Runs `fill` against an AtomicWriter for `path`, committing on success, cleaning up on error. */
export async function writeAtomically(path: string, fill: (w: AtomicWriter) => Promise<void>): Promise<void> {
  const w = new AtomicWriter(path);
  try {
    await fill(w);
    await w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** One of several outputs written together: its path and what goes in it. */
export interface Output {
  path: string;
  fill: (w: AtomicWriter) => Promise<void>;
}

/**
 * Writes outputs that belong together — a main output first, then its companions (a report,
 * stats) — so that a kill never leaves files of two different runs side by side. Each is filled
 * in order (a companion may use what filling the main output counted) and completed in its temp
 * file; then the old companions are removed, the main output renamed into place, and the
 * companions after it. Killed at any point, the folder holds the old set, the new set, or a main
 * output (old or new) with no companion: never a new main output beside an old report.
 * `afterPublish` runs after each rename (tests use it to stop midway, as a kill would).
 * @example
 *   await writeTogether([{ path: 'clean.jsonl', fill: (w) => w.write(lines) }, { path: 'clean.dropped.jsonl', fill: (w) => w.write(report) }]);
 */
export async function writeTogether(outputs: Output[], afterPublish?: (path: string) => void): Promise<void> {
  const writers: AtomicWriter[] = [];
  try {
    for (const o of outputs) {
      const w = new AtomicWriter(o.path);
      writers.push(w);
      await o.fill(w);
      await w.finish();
    }
    for (const w of writers.slice(1)) rmSync(w.path, { force: true });
    for (const w of writers) {
      w.publish();
      afterPublish?.(w.path);
    }
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
}

/**
 * Makes what was written under `path` (a file, or a folder and everything in it) durable: each
 * file's bytes and each folder's entries reach the disk before the rename that publishes them,
 * so a power cut leaves the old output or the new one, never a renamed file of zeros.
 */
export function syncTree(path: string): void {
  const st = statSync(path);
  if (st.isDirectory()) for (const entry of readdirSync(path)) syncTree(join(path, entry));
  syncPath(path);
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } catch (e) {
    // Some filesystems refuse fsync on a folder (EINVAL, EISDIR); a file's failure is real.
    if (!statSync(path).isDirectory()) throw e;
  } finally {
    closeSync(fd);
  }
}

/**
 * Publishes a finished temp file or folder: synced (syncTree), renamed onto `target` (a file
 * replaced; an existing folder must be removed or moved aside by the caller first), and the
 * folder holding it synced so the rename itself is durable.
 * @example publish(tmp, 'out/model.safetensors');
 */
export function publish(tmp: string, target: string): void {
  syncTree(tmp);
  renameSync(tmp, target);
  syncPath(dirname(resolve(target)));
}

/**
 * Writes a folder as a whole: `fill` writes into a temp folder beside `target`, which then
 * replaces `target` (removed first; with `swap`, moved aside and removed after, so a crash in
 * between leaves one of the two complete). A failure removes the temp folder and names `target`.
 * @example await writeFolderAtomic('out/checkpoint-10', async (dir) => { writeFileAtomic(join(dir, 'state.json'), '{}'); });
 */
export async function writeFolderAtomic(target: string, fill: (dir: string) => void | Promise<void>, o: { swap?: boolean } = {}): Promise<void> {
  const w = new FolderWrite(target);
  try {
    await fill(w.tmp);
  } catch (e) {
    throw w.abort(e);
  }
  w.commit(o.swap);
}

/** writeFolderAtomic for a `fill` that writes synchronously. */
export function writeFolderAtomicSync(target: string, fill: (dir: string) => void, o: { swap?: boolean } = {}): void {
  const w = new FolderWrite(target);
  try {
    fill(w.tmp);
  } catch (e) {
    throw w.abort(e);
  }
  w.commit(o.swap);
}

/** A folder being written: its tracked temp folder beside the target, then committed or aborted. */
class FolderWrite {
  readonly tmp: string;

  constructor(private readonly target: string) {
    this.tmp = tracked(tempPathFor(target));
    try {
      mkdirSync(this.tmp, { recursive: true });
    } catch (e) {
      throw this.abort(e);
    }
  }

  commit(swap = false): void {
    try {
      replaceFolder(this.tmp, this.target, swap);
      settled(this.tmp);
    } catch (e) {
      throw this.abort(e);
    }
  }

  /** Removes the temp folder; returns the error naming the target. */
  abort(e: unknown): Error {
    rmSync(this.tmp, { recursive: true, force: true });
    settled(this.tmp);
    return withPath(this.target, e);
  }
}

/** Moves the finished folder `tmp` onto `target` (see writeFolderAtomic); `tmp` is synced first. */
export function replaceFolder(tmp: string, target: string, swap = false): void {
  if (!swap || !existsSync(target)) {
    rmSync(target, { recursive: true, force: true });
    mkdirSync(dirname(resolve(target)), { recursive: true });
    publish(tmp, target);
    return;
  }
  const old = tracked(`${tmp}.old`);
  try {
    renameSync(target, old);
    publish(tmp, target);
    rmSync(old, { recursive: true, force: true });
  } finally {
    settled(old);
  }
}

/**
 * Copies every file under `from` to the same path under `to`, each written atomically (folders
 * made as needed); files of `to` that `from` lacks are left.
 * @example copyFilesAtomic('runs/ft/best', 'runs/ft');
 */
export function copyFilesAtomic(from: string, to: string): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) {
      mkdirSync(dst, { recursive: true });
      copyFilesAtomic(src, dst);
    } else writeFileAtomic(dst, readFileSync(src));
  }
}
