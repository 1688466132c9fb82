/** A model directory on disk as `ModelFiles` (st-modules.ts's readers take either this or files in memory). */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from '../util/json.js';
import type { ModelFiles } from './st-modules.js';

/** @example savedPooling(diskFolder('models/all-MiniLM-L6-v2')); // 'mean' */
export function diskFolder(dir: string): ModelFiles {
  return {
    path: (rel) => join(dir, rel),
    has: (rel) => existsSync(join(dir, rel)) && statSync(join(dir, rel)).isFile(),
    json: (rel) => readJsonFile(join(dir, rel)),
  };
}
