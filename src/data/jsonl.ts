/**
 * Streaming JSONL: lines are split on raw bytes and decoded one at a time, so a 10 GB file is
 * never held in memory and invalid UTF-8 is reported with its line number. Output goes to a
 * temp file beside the target and is renamed into place only when complete.
 */
import { closeSync, createReadStream, openSync, readSync, existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { tempPathFor, withPath } from '../util/atomic.js';
import { isWithin, realPath } from '../util/paths.js';

import { DataError, type Line } from './lines.js';

export { DataError, type Line, parseObject } from './lines.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Yields the non-blank lines of a file. A blank line followed by more data is an error (a
 * truncated or concatenated file); trailing blank lines are fine. Bad lines (invalid UTF-8,
 * blank in the middle) are passed to `onBad` when given, else thrown.
 */
export async function* readLines(path: string, onBad?: (e: DataError) => void): AsyncGenerator<Line> {
  if (!existsSync(path)) throw new Error(`${path}: no such file`);
  if (statSync(path).isDirectory()) throw new Error(`${path}: is a directory; expected a file`);
  let lineNo = 0;
  let pendingBlank: number | undefined;
  const emit = (bytes: Buffer): Line | undefined => {
    lineNo++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--; // CRLF
    let body = bytes.subarray(0, end);
    if (lineNo === 1 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) {
      body = body.subarray(3);
      bytes = bytes.subarray(3);
    }
    let text: string;
    try {
      text = decoder.decode(body);
    } catch {
      const err = new DataError(path, lineNo, 'invalid UTF-8');
      if (onBad) return onBad(err), undefined;
      throw err;
    }
    if (text.trim() === '') {
      pendingBlank ??= lineNo;
      return undefined;
    }
    if (pendingBlank !== undefined) {
      const err = new DataError(path, pendingBlank, 'blank line in the middle of the file');
      pendingBlank = undefined;
      if (onBad) onBad(err);
      else throw err;
    }
    return { line: lineNo, text, bytes };
  };
  // The bytes of a line split across chunks are joined once, when its newline arrives: a 50 MB
  // line costs one copy, not one per chunk.
  let pending: Buffer[] = [];
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      const l = emit(pending.length ? Buffer.concat([...pending, piece]) : piece);
      pending = [];
      if (l) yield l;
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length) {
    const l = emit(Buffer.concat(pending));
    if (l) yield l;
  }
}

/** Whether a file starts with a UTF-8 byte order mark (which `readLines` leaves out). */
export function startsWithBom(path: string): boolean {
  const head = Buffer.alloc(3);
  const fd = openSync(path, 'r');
  try {
    return readSync(fd, head, 0, 3, 0) === 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
  } finally {
    closeSync(fd);
  }
}


/**
 * Checks an output path before any work starts, so a long job does not fail at its end: its
 * directory exists and takes a file (a probe written and removed), it is not a directory, and it
 * is a different file from every input.
 */
export function checkOutput(output: string, inputs: string[]): void {
  const dir = dirname(resolve(output));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${output}: cannot write: directory ${dir} does not exist`);
  if (existsSync(output) && statSync(output).isDirectory()) throw new Error(`${output}: cannot write: it is a directory`);
  const probe = tempPathFor(output);
  try {
    writeFileSync(probe, '');
  } catch (e) {
    throw withPath(output, e);
  } finally {
    rmSync(probe, { force: true });
  }
  assertNotInput(output, inputs);
}

/**
 * Throws unless `output` is a different file from every input, and lies outside every input
 * folder (a model or reranker folder, a BEIR folder, a cache: any file in them may be read).
 */
export function assertNotInput(output: string, inputs: string[]): void {
  const out = realPath(output);
  for (const input of inputs) {
    if (realPath(input) === out) throw new Error(`refusing to write ${output}: it is an input file; choose another output path`);
    if (existsSync(input) && statSync(input).isDirectory() && isWithin(output, input)) {
      throw new Error(`refusing to write ${output}: it is inside ${input}, a folder this command reads; choose an output path outside it`);
    }
  }
}

export { AtomicWriter, type Output, writeAtomically, writeFileAtomic, writeTogether } from '../util/atomic.js';
