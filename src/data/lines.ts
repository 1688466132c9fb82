/** A JSONL line and the error that names its file, line and field (no file system: the browser build reads records with it too). */

/** Bad input: names the file, the 1-based line and (where known) the field. */
export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
    readonly field?: string,
  ) {
    super(`${file}:${line}: ${field ? `field "${field}": ` : ''}${reason}`);
    this.name = 'DataError';
  }
}

export interface Line {
  /** 1-based line number. */
  line: number;
  text: string;
  /** The line's bytes as in the file: a CR before the LF kept, a UTF-8 BOM left out. */
  bytes: Uint8Array;
}

/** Parses one JSON line into an object, or throws a DataError naming the line. */
export function parseObject(path: string, l: Line): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(l.text);
  } catch (e) {
    throw new DataError(path, l.line, `malformed JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DataError(path, l.line, 'expected a JSON object');
  }
  return value as Record<string, unknown>;
}
