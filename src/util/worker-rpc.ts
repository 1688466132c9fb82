/**
 * Typed requests to a worker thread, answered by id. A protocol names each request kind with the
 * fields it carries and the reply it gets; `Member.ask` and `serve` are checked against it, and
 * the messages on the wire are discriminated unions (`ToWorker`, `FromWorker`), not strings. A
 * worker that dies (out of memory, killed) fails what it was doing instead of hanging it;
 * `stopWorkers` stops every worker between two of its batches (Ctrl-C).
 * @example
 *   type Echo = { echo: { request: { text: string }; reply: { text: string } } };
 *   const m = new Member<Echo>(new Worker(new URL('./echo-worker.js', import.meta.url)));
 *   const { text } = await m.ask('echo', { text: 'hi' });
 *   // echo-worker.ts: serve<Echo>({ echo: async (m) => ({ text: m.text }) });
 */
import { parentPort, type Transferable, type Worker } from 'node:worker_threads';

/** Request kinds → what each request carries and what its reply holds. */
export type Protocol = Record<string, { request: object; reply: object }>;

/** What the main thread posts: a request of some kind, or "stop at your next progress report". */
export type ToWorker = { type: 'request'; id: number; kind: string; body: object } | { type: 'stop' };

/** What a worker posts: progress (texts done) while a request runs, then its reply or its error. */
export type FromWorker = { type: 'tick'; id: number; n: number } | { type: 'reply'; id: number; body: object } | { type: 'error'; id: number; message: string };

/** Every worker a Member talks to, until it exits: what an interrupted run stops (stopWorkers). */
const live = new Set<Member<Protocol>>();

/**
 * Stops every live worker cleanly: each is asked to stop at its next progress report (after the
 * batch it is running: an onnxruntime run cannot be cut short, and a worker terminated inside one
 * aborts the process), then terminated once it has answered what it had in hand.
 * @example process.on('SIGINT', () => void stopWorkers().finally(() => process.exit(130)));
 */
export async function stopWorkers(): Promise<void> {
  await Promise.all([...live].map((m) => m.stop()));
}

/** How many worker threads are running now. */
export function liveWorkers(): number {
  return live.size;
}

export class Member<P extends Protocol> {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (r: object) => void; reject: (e: Error) => void; onTick?: (n: number) => void }>();
  private idle?: () => void;

  constructor(
    readonly worker: Worker,
    what = 'a worker',
  ) {
    live.add(this as unknown as Member<Protocol>);
    worker.on('exit', () => {
      live.delete(this as unknown as Member<Protocol>);
      this.idle?.();
    });
    worker.on('message', (m: FromWorker) => {
      const w = this.waiting.get(m.id);
      if (m.type === 'tick') return w?.onTick?.(m.n);
      this.waiting.delete(m.id);
      if (m.type === 'error') w?.reject(new Error(m.message));
      else w?.resolve(m.body);
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
      this.worker.postMessage({ type: 'stop' } satisfies ToWorker);
      await idle;
    }
    await this.worker.terminate();
  }

  /** Sends a `kind` request; `onTick` hears the worker's progress reports until the answer. */
  ask<K extends keyof P & string>(kind: K, body: P[K]['request'], transfer: Transferable[] = [], onTick?: (n: number) => void): Promise<P[K]['reply']> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: object) => void, reject, onTick });
      this.worker.postMessage({ type: 'request', id, kind, body } satisfies ToWorker, transfer);
    });
  }
}

/** A worker's handler per request kind; `tick(n)` reports progress while it runs. */
export type Handlers<P extends Protocol> = { [K in keyof P]: (request: P[K]['request'], tick: (n: number) => void) => Promise<P[K]['reply']> };

/**
 * The worker's side of Member.ask: answers each request with its kind's handler; a thrown error
 * becomes the reply's error. Typed arrays at the top level of a reply are transferred, not copied
 * (not those over shared memory).
 * @example serve<Echo>({ echo: async (m) => ({ text: m.text }) });
 */
export function serve<P extends Protocol>(handlers: Handlers<P>): void {
  let stopping = false;
  const post = (m: FromWorker, transfer: Transferable[] = []) => parentPort!.postMessage(m, transfer);
  parentPort!.on('message', async (m: ToWorker) => {
    if (m.type === 'stop') return void (stopping = true);
    const tick = (n: number) => {
      if (stopping) throw new Error('interrupted');
      post({ type: 'tick', id: m.id, n });
    };
    try {
      const handle = handlers[m.kind as keyof P];
      if (!handle) throw new Error(`worker: no handler for "${m.kind}"`);
      const body = await handle(m.body as never, tick);
      const transfer = Object.values(body).flatMap((v) => (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer ? [v.buffer] : []));
      post({ type: 'reply', id: m.id, body }, transfer);
    } catch (e) {
      post({ type: 'error', id: m.id, message: (e as Error).message });
    }
  });
}
