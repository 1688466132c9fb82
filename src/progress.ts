/**
 * Progress for long loops: a bar with rate and ETA on a TTY, plain periodic lines otherwise
 * (logs, CI), nothing when quiet. Always on stderr so stdout stays machine-readable. With
 * `format: 'json'` (the CLI's `--progress json`) every update is one JSON line
 * `{"progress": label, "done", "total", "rate", "eta", "info"}`, for a UI or a job runner to read.
 * Jobs take their reporter from the run (run.ts); nothing here reads the environment.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Advances by n; `info` (e.g. "loss 0.31 lr 2e-5") is shown after the counts. */
  tick(n?: number, info?: string): void;
  done(): void;
}

/** Opens a progress display for a loop of `total` steps: what a run hands down to the layers it calls. */
export type Reporter = (label: string, total: number) => Progress;

export type ProgressFormat = 'bar' | 'json';

export interface ProgressOptions {
  quiet?: boolean;
  /** `bar` (default): a bar on a terminal, plain lines in logs; `json`: one JSON line per update. */
  format?: ProgressFormat;
  /** Seconds between plain lines when stderr is not a TTY. */
  interval?: number;
}

const silent: Progress = { tick() {}, done() {} };

/** The reporter that shows nothing: what layers below a job use when given none. */
export const noProgress: Reporter = () => silent;

export function progress(label: string, total: number, options: ProgressOptions = {}): Progress {
  if (options.quiet || total === 0) return silent;
  const start = Date.now();
  let count = 0;
  if (options.format === 'json') {
    let last = 0;
    const line = (info: string, final = false) => {
      const s = (Date.now() - start) / 1000;
      const r = s > 0 ? count / s : 0;
      const eta = final ? 0 : r > 0 ? Math.round((total - count) / r) : null;
      process.stderr.write(JSON.stringify({ progress: label, done: count, total, rate: Number(r.toFixed(3)), eta, info: info || undefined }) + '\n');
    };
    return {
      tick(n = 1, info = '') {
        count += n;
        const now = Date.now();
        if (now - last >= 1000 || count >= total) {
          last = now;
          line(info);
        }
      },
      done() {
        count = total;
        line('', true);
      },
    };
  }
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted} {info}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { rate: '0', info: '' });
    return {
      tick(n = 1, info = '') {
        count += n;
        bar.update(count, { rate: rate(count, start), info });
      },
      done() {
        bar.update(total, { rate: rate(count, start) });
        bar.stop();
      },
    };
  }
  const every = (options.interval ?? 10) * 1000;
  let last = start;
  return {
    tick(n = 1, info = '') {
      count += n;
      const now = Date.now();
      if (now - last >= every) {
        last = now;
        const r = count / ((now - start) / 1000);
        const eta = r > 0 ? Math.round((total - count) / r) : 0;
        process.stderr.write(`${label}: ${count}/${total} (${Math.round((100 * count) / total)}%) ${r.toFixed(2)}/s ETA ${eta}s ${info}\n`);
      }
    },
    done() {
      process.stderr.write(`${label}: ${total}/${total} done in ${((Date.now() - start) / 1000).toFixed(1)}s\n`);
    },
  };
}

function rate(count: number, start: number): string {
  const s = (Date.now() - start) / 1000;
  return s > 0 ? (count / s).toFixed(1) : '0';
}
