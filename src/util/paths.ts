/** Paths compared as the files they name: through symlinks and `..`, for paths that exist or not. */
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';

/** The real path of `p` when it exists, else its absolute form. */
export const realPath = (p: string): string => (existsSync(p) ? realpathSync(p) : resolve(p));

/** Whether `inner` is `outer` or lies inside it. */
export function isWithin(inner: string, outer: string): boolean {
  const r = relative(realPath(outer), realPath(inner));
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}
