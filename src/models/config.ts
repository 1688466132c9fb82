/** A model folder's `config.json` (ModelConfig and its checks: model-config.ts). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ModelConfig, parseConfig } from './model-config.js';

export * from './model-config.js';

export function readConfig(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir}: no config.json; expected a Hugging Face model directory`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
  return parseConfig(raw, path);
}
