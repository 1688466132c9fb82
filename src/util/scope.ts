/**
 * A disposal scope: what a run (or a constructor that builds several resources) owns, released
 * in reverse order when the scope ends — like `AsyncDisposableStack`, which Node 20 lacks. With
 * `await using`, an error anywhere after a resource was taken still releases it; `move()` hands
 * everything to a new scope when the builder succeeds (the built object then owns it).
 * @example
 *   await using scope = new Scope();
 *   const search = scope.use(await ExactSearch.create());
 *   const rows = scope.defer(() => file.remove());
 */

/** Anything with a close() or release() (sessions, encoders, searches, worker pools). */
export type Closable = { close(): unknown } | { release(): unknown } | { [Symbol.asyncDispose](): PromiseLike<void> };

export class Scope implements AsyncDisposable {
  private stack: (() => unknown)[] = [];
  private disposed = false;

  /** Releases `resource` when the scope ends; returns it. */
  use<T extends Closable | null | undefined>(resource: T): T {
    if (resource == null) return resource;
    const r = resource as Record<string | symbol, unknown>;
    const release = typeof r[Symbol.asyncDispose] === 'function' ? () => (r[Symbol.asyncDispose] as () => unknown).call(r) : typeof r.close === 'function' ? () => (r.close as () => unknown).call(r) : () => (r.release as () => unknown).call(r);
    this.defer(release);
    return resource;
  }

  /** Runs `fn` when the scope ends (after whatever was added later). */
  defer(fn: () => unknown): void {
    if (this.disposed) throw new Error('Scope: already disposed');
    this.stack.push(fn);
  }

  /** A new scope holding everything this one held; this one is left empty. */
  move(): Scope {
    const next = new Scope();
    next.stack = this.stack;
    this.stack = [];
    return next;
  }

  /**
   * Releases everything, last taken first. Every release runs even when one fails; the first
   * failure is thrown afterwards (unless the scope ends because of an error: that one wins).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.disposed = true;
    let failure: unknown;
    while (this.stack.length) {
      try {
        await this.stack.pop()!();
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure !== undefined) throw failure;
  }

  dispose(): Promise<void> {
    return this[Symbol.asyncDispose]();
  }
}
