/**
 * Requests to a worker thread, answered by id: `ask` posts a message and resolves with the
 * worker's reply (or rejects with its `error`); the worker answers through `serve`. A worker that
 * dies (out of memory, killed) fails what it was doing instead of hanging it; `stopWorkers` stops
 * every worker between two of its batches (Ctrl-C).
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

/** Every worker a Member talks to, until it exits: what an interrupted run stops (stopWorkers). */
const live = new Set<Member>();

/** The message that asks a worker to stop at its next progress report (serve). */
const STOP = '__stop';

/**
 * Stops every live worker cleanly: each is asked to stop at its next progress report (after the
 * batch it is running: an onnxruntime run cannot be cut short, and a worker terminated inside one
 * aborts the process), then terminated once it has answered what it had in hand.
 * @example process.on('SIGINT', () => void stopWorkers().finally(() => process.exit(130)));
 */
export async function stopWorkers(): Promise<void> {
  await Promise.all([...live].map((m) => m.stop()));
}

export class Member<R extends Reply = Reply> {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (r: R) => void; reject: (e: Error) => void; onTick?: (n: number) => void }>();
  private idle?: () => void;

  constructor(
    readonly worker: Worker,
    what = 'a worker',
  ) {
    live.add(this as unknown as Member);
    worker.on('exit', () => {
      live.delete(this as unknown as Member);
      this.idle?.();
    });
    worker.on('message', (r: R) => {
      const w = this.waiting.get(r.id);
      if (r.tick !== undefined) return w?.onTick?.(r.tick);
      this.waiting.delete(r.id);
      if (r.error) w?.reject(new Error(r.error));
      else w?.resolve(r);
      if (this.waiting.size === 0) this.idle?.();
    });
    const fail = (e: Error) => {
      this.waiting.forEach((w) => w.reject(e));
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`${what} exited (code ${code}) with work in hand`)));
  }

  /** Asks the worker to stop at its next progress report, waits until it has answered everything in hand, and terminates it. */
  async stop(): Promise<void> {
    if (this.waiting.size) {
      const idle = new Promise<void>((r) => (this.idle = r));
      this.worker.postMessage({ kind: STOP, id: -1 });
      await idle;
    }
    await this.worker.terminate();
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
  let stopping = false;
  parentPort!.on('message', async (m: Request) => {
    if (m.kind === STOP) return void (stopping = true);
    const tick = (n: number) => {
      if (stopping) throw new Error('interrupted');
      parentPort!.postMessage({ id: m.id, tick: n });
    };
    try {
      const reply = (await handle(m, tick)) ?? {};
      const transfer = Object.values(reply).flatMap((v) => (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer ? [v.buffer] : []));
      parentPort!.postMessage({ ...reply, id: m.id }, transfer);
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: (e as Error).message });
    }
  });
}
