/**
 * Requests to a worker thread, answered by id: `ask` posts a message and resolves with the
 * worker's reply (or rejects with its `error`); the worker answers through `serve`. A worker that
 * dies (out of memory, killed) fails what it was doing instead of hanging it.
 * @example
 *   const m = new Member(new Worker(new URL('./my-worker.js', import.meta.url)));
 *   const reply = await m.ask({ kind: 'load', dir });
 */
import { parentPort, type Transferable, type Worker } from 'node:worker_threads';

export interface Reply {
  id: number;
  error?: string;
  /** A progress report (texts done) while the request runs, not its answer. */
  tick?: number;
  [key: string]: unknown;
}

export class Member<R extends Reply = Reply> {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (r: R) => void; reject: (e: Error) => void; onTick?: (n: number) => void }>();

  constructor(
    readonly worker: Worker,
    what = 'a worker',
  ) {
    worker.on('message', (r: R) => {
      const w = this.waiting.get(r.id);
      if (r.tick !== undefined) return w?.onTick?.(r.tick);
      this.waiting.delete(r.id);
      if (r.error) w?.reject(new Error(r.error));
      else w?.resolve(r);
    });
    const fail = (e: Error) => {
      this.waiting.forEach((w) => w.reject(e));
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`${what} exited (code ${code}) with work in hand`)));
  }

  /** Sends `message`; `onTick` hears the worker's progress reports (`{ id, tick }`) until the answer. */
  ask(message: Record<string, unknown>, transfer: Transferable[] = [], onTick?: (n: number) => void): Promise<R> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, onTick });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }
}

/** A request as a worker receives it. */
export type Request = { id: number; kind: string } & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The worker's side of Member.ask: answers each request with what `handle` returns, `tick(n)`
 * reporting progress meanwhile; a thrown error becomes the reply's `error`. Typed arrays at the
 * top level of a reply are transferred, not copied (not those over shared memory).
 * @example serve(async (m, tick) => (m.kind === 'encode' ? { rows: await encode(m.texts, tick) } : {}));
 */
export function serve(handle: (m: Request, tick: (n: number) => void) => Promise<Record<string, unknown> | void>): void {
  parentPort!.on('message', async (m: Request) => {
    try {
      const reply = (await handle(m, (tick) => parentPort!.postMessage({ id: m.id, tick }))) ?? {};
      const transfer = Object.values(reply).flatMap((v) => (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer ? [v.buffer] : []));
      parentPort!.postMessage({ ...reply, id: m.id }, transfer);
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: (e as Error).message });
    }
  });
}
