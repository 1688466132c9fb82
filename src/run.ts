/**
 * One run of a job: how it reports progress and what it owns. A job opens a Run for its whole
 * life (`await using run = openRun(o)`), hands `run.progress` to the layers it calls and gives
 * the run every session, worker, encoder and claim it takes (`run.use`, `run.defer`); when the
 * job ends — done, failed or interrupted — the run releases them, last taken first. Temp files
 * being written are tracked by the atomic writer (util/atomic.ts), whose pending set Ctrl-C
 * clears. Progress is not read from globals: a library caller and the CLI pass the same options.
 * @example
 *   await using run = openRun({ quiet: false, progressFormat: 'json' });
 *   const search = run.use(await ExactSearch.create());
 *   await search.search(q, p, 10, { progress: run.progress });
 */
import { Scope } from './util/scope.js';
import { type Progress, progress, type ProgressFormat, type Reporter } from './progress.js';
import { pendingCount, removePending } from './util/atomic.js';
import { liveSessions } from './runtime/session.js';
import { liveWorkers, stopWorkers } from './util/worker-rpc.js';

/** What every job takes about its run. */
export interface RunOptions {
  /** No progress and no summary lines. */
  quiet?: boolean;
  /** `bar` (default: a bar on a terminal, lines in logs) or `json` (one JSON line per update). */
  progressFormat?: ProgressFormat;
  /** The run this job is part of (a demo's steps): its progress settings are used. */
  run?: Run;
}

export class Run extends Scope {
  readonly quiet: boolean;
  readonly format: ProgressFormat;

  constructor(o: Omit<RunOptions, 'run'> = {}) {
    super();
    this.quiet = !!o.quiet;
    this.format = o.progressFormat ?? 'bar';
  }

  /** A progress display for a loop of `total` steps, as this run shows them. */
  readonly progress: Reporter = (label: string, total: number): Progress => progress(label, total, { quiet: this.quiet, format: this.format });

  /** A summary line on stderr, unless quiet. */
  log(message: string): void {
    if (!this.quiet) process.stderr.write(message + '\n');
  }
}

/** The run a job works in: a new one with the caller's settings (those of `o.run` when given). */
export function openRun(o: RunOptions = {}): Run {
  return new Run(o.run ? { quiet: o.quiet ?? o.run.quiet, progressFormat: o.progressFormat ?? o.run.format } : o);
}

/**
 * What is held now across every run: live onnxruntime sessions, worker threads and temp files
 * being written. Zero between jobs; tests check it after every failing command.
 */
export function liveResources(): { sessions: number; workers: number; temps: number } {
  return { sessions: liveSessions(), workers: liveWorkers(), temps: pendingCount() };
}

/**
 * Ctrl-C: removes every temp file being written (how many: `removed`) and stops every worker
 * between two batches (`stopped`). A session running on this thread finishes its batch first:
 * onnxruntime's run holds the event loop.
 */
export function interrupt(): { removed: number; stopped: Promise<void> } {
  return { removed: removePending(), stopped: stopWorkers() };
}
