/** JSON files read with their path in every error. */
import { readFileSync } from 'node:fs';

/**
 * The parsed contents of a JSON file; a parse error names the file.
 * @example const index = readJsonFile('model.safetensors.index.json');
 */
export function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * A JSON file that must hold an object (a config, a manifest, a state).
 * @example const c = readJsonObject('1_Pooling/config.json');
 */
export function readJsonObject(path: string): Record<string, unknown> {
  const c = readJsonFile(path);
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error(`${path}: expected a JSON object`);
  return c as Record<string, unknown>;
}
