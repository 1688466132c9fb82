/** st-modules.ts's readers on a model directory on disk. */
import { diskFolder } from './folder.js';
import type { Pooling } from './pooling.js';
import * as st from './st-modules.js';

export { poolingConfig } from './st-modules.js';

/** @example savedPooling('models/all-MiniLM-L6-v2'); // 'mean' */
export const savedPooling = (dir: string): Pooling | undefined => st.savedPooling(diskFolder(dir));
/** @example savedNormalize('models/all-MiniLM-L6-v2'); // true */
export const savedNormalize = (dir: string): boolean | undefined => st.savedNormalize(diskFolder(dir));
/** @example savedMaxSeqLength('models/all-MiniLM-L6-v2'); // 256 */
export const savedMaxSeqLength = (dir: string): number | undefined => st.savedMaxSeqLength(diskFolder(dir));
