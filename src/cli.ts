#!/usr/bin/env node
/**
 * The `embedtune` command line. Its options come from one table (options.ts): each parsed flag
 * lands under the library's key for it, so a command's action is one call of its job. Importing
 * this module runs nothing; `main()` does, when the file is run as the program.
 * @example
 *   import { buildProgram } from 'embedtune/dist/src/cli.js';
 *   await buildProgram().parseAsync(['node', 'embedtune', 'eval', '-m', 'use-lite', '-d', 'data/cranfield']);
 */
import './runtime/no-telemetry.js'; // before onnxruntime-node loads
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { encodeFile } from './jobs/encode.js';
import { clean } from './jobs/clean.js';
import { mine } from './jobs/mine.js';
import { evaluate } from './jobs/evaluate.js';
import { beirToRecords } from './jobs/convert.js';
import { demo } from './jobs/demo.js';
import { serveWeb } from './jobs/web.js';
import { writeReport } from './jobs/report.js';
import { train } from './jobs/train.js';
import { exportCheckpoint } from './jobs/export.js';
import { merge, parseShard, runShard, type ShardJob } from './jobs/shard.js';
import { score } from './jobs/score.js';
import { loadTrainConfig } from './training/config.js';
import { checkThreads } from './runtime/device.js';
import { interrupt } from './run.js';
import { COMMANDS, defaultOf, GLOBAL, type OptionSpec, type Parse } from './options.js';

type Values = Record<string, unknown>;

const int = (flag: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} must be an integer`);
  return n;
};
const DTYPES: Record<string, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** Reads an option's text as its row says (options.ts's `Parse`). */
const PARSERS: Record<Parse, (flag: string, v: string) => unknown> = {
  int,
  positive: (flag, v) => {
    const n = int(flag, v);
    if (n < 1) throw new InvalidArgumentError(`${flag} must be at least 1`);
    return n;
  },
  number: (flag, v) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number`);
    return n;
  },
  threads: (flag, v) => {
    const n = PARSERS.positive(flag, v) as number;
    try {
      return checkThreads(n, 'threads');
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message.replace(/^threads: /, ''));
    }
  },
  intList: (flag, v) => v.split(',').map((x) => int(flag, x.trim())),
  list: (_flag, v) => v.split(',').map((x) => x.trim()).filter(Boolean),
  dtype: (flag, v) => {
    const d = DTYPES[v.toLowerCase()];
    if (!d) throw new InvalidArgumentError(`${flag} must be f32, f16 or bf16, got "${v}"`);
    return d;
  },
  json: (_flag, v) => {
    try {
      return JSON.parse(v);
    } catch {
      return v; // a plain string
    }
  },
};

/** Commander's option for a row: its parser, choices and the default the job applies (shown, not set). */
function option(command: string, o: OptionSpec): Option {
  const d = defaultOf(command, o.key);
  const help = d === undefined || o.flags.startsWith('--no-') ? o.help : `${o.help} (default: ${Array.isArray(d) ? d.join(',') : d})`;
  const opt = new Option(o.flags, help);
  if (o.required) opt.makeOptionMandatory();
  if (o.choices) opt.choices(o.choices as string[]);
  const name = opt.long ?? o.flags;
  if (o.parse) opt.argParser((v: string) => PARSERS[o.parse!](name.replace(/^--/, ''), v));
  return opt;
}

/** The parsed flags under the library's keys (commander names them after the flag). */
function keyed(options: OptionSpec[], parsed: Values): Values {
  const out: Values = {};
  for (const o of options) {
    const attr = new Option(o.flags).attributeName();
    if (parsed[attr] !== undefined) out[o.key] = parsed[attr];
  }
  return out;
}

/** Runs an encoding job whole, or with `shard` only its shard's encoding (`embedtune merge` finishes it). */
async function runJob(job: ShardJob, values: Values, run: (options: never) => Promise<unknown>): Promise<void> {
  const { shard, shardDir, shardDtype, ...options } = values as Values & { shard?: string; shardDir?: string; shardDtype?: 'f32' | 'f16'; output?: string };
  if (shard === undefined) {
    if (shardDir !== undefined) throw new Error('--shard-dir needs --shard');
    if (shardDtype !== undefined) throw new Error('--shard-dtype needs --shard');
    await run(options as never);
    return;
  }
  const dir = shardDir ?? (options.output ? `${options.output}.shards` : undefined);
  if (!dir) throw new Error(`--shard: give --shard-dir (or -o) for the shard files`);
  await runShard(job, options as never, parseShard(shard), dir, shardDtype ?? 'f32');
}

/** `train`: the config file, the flags over it (each a config key), `--set key=value` over those. */
async function runTrain(values: Values): Promise<void> {
  const { config, set, quiet, progressFormat, ...flags } = values as Values & { config?: string; set?: string[]; quiet?: boolean };
  const overrides: Values = { ...flags };
  for (const kv of set ?? []) {
    const at = kv.indexOf('=');
    if (at < 1) throw new Error(`--set ${kv}: expected key=value`);
    overrides[kv.slice(0, at)] = PARSERS.json('set', kv.slice(at + 1));
  }
  const loaded = loadTrainConfig(config, overrides);
  if (loaded.ignored.length && !quiet) process.stderr.write(`train: ignoring keys that do not apply here: ${loaded.ignored.join(', ')}\n`);
  if (!quiet) for (const n of loaded.notes) process.stderr.write(`train: ${n}\n`);
  await train(loaded.config, { quiet, progressFormat: progressFormat as 'bar' | 'json' | undefined });
}

/** What each command does with its options (keyed as the library names them). */
const ACTIONS: Record<string, (values: Values) => Promise<unknown>> = {
  encode: (v) => runJob('encode', v, encodeFile),
  clean: (v) => runJob('clean', v, clean),
  mine: (v) => runJob('mine', v, mine),
  eval: (v) => runJob('eval', v, evaluate),
  score: (v) => score(v as never),
  merge: (v) => merge(v.dir as string, v),
  train: runTrain,
  export: (v) => exportCheckpoint(v as never),
  demo: (v) => demo(v as never),
  report: async (v) => process.stderr.write(`report: ${writeReport(v.runDir as string)}\n`),
  convert: (v) => beirToRecords(v as never),
  // Serves until Ctrl-C (exit 130, as every command interrupted).
  web: async (v) => {
    await serveWeb(v as never);
    await new Promise(() => {});
  },
};

export function buildProgram(): Command {
  const program = new Command('embedtune')
    .description('Fine-tune text embedding models end to end: clean queries, mine hard negatives, train, evaluate.')
    .version('0.1.0')
    .showHelpAfterError();
  for (const o of GLOBAL) program.addOption(option('', o));
  for (const spec of COMMANDS) {
    const cmd = program.command(spec.name).description(spec.description);
    if (spec.argument) cmd.argument(spec.argument.name, spec.argument.help);
    for (const o of spec.options) cmd.addOption(option(spec.name, o));
    cmd.action(async (...args: unknown[]) => {
      const parsed = cmd.opts();
      const values = { ...keyed(GLOBAL, program.opts()), ...keyed(spec.options, parsed) };
      if (spec.argument && args[0] !== undefined) {
        const given = values[spec.argument.key];
        if (given !== undefined && given !== args[0]) throw new Error(`${spec.name}: two ${spec.argument.key}s given (${args[0]} and ${given}); give one`);
        values[spec.argument.key] = args[0];
      }
      await ACTIONS[spec.name]!(values);
    });
  }
  return program;
}

/**
 * Runs the program on `argv`. Ctrl-C / kill removes the temp files being written (outputs are
 * renamed into place only when complete, so nothing half-written is left) and exits 130 / 143.
 * A running onnxruntime batch finishes first: session.run holds the event loop, and worker
 * threads are stopped after their batch (one terminated inside a run aborts the process: exit
 * 134); a second signal exits at once.
 */
export async function main(argv: string[] = process.argv): Promise<void> {
  let interrupted = false;
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      if (interrupted) process.exit(code);
      interrupted = true;
      const { removed, stopped } = interrupt();
      process.stderr.write(`\nembedtune: interrupted (${signal}); ${removed ? `removed ${removed} unfinished output(s); ` : ''}outputs from before are untouched\n`);
      void stopped.finally(() => process.exit(code));
    });
  }
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    // Bad input and bad settings are the user's to fix: the message, not our stack.
    process.stderr.write(`embedtune: ${(e as Error).message}\n`);
    if (process.env.EMBEDTUNE_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = 1;
  }
}

/** Whether this module is the program being run (`embedtune …`, `node dist/src/cli.js …`), not an import. */
function isEntry(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) void main();
