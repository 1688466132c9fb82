/** NumPy `.npy` (format version 1.0) headers for the float32 matrices we write. */

/**
 * The header of a NumPy .npy (version 1.0) file holding a float32 (or `'<f2'`: float16) [rows, dim] matrix.
 * @example Buffer.concat([npyHeader(2, 3), Buffer.from(new Float32Array(6).buffer)]); // a 2 × 3 .npy
 */
export function npyHeader(rows: number, dim: number, descr: '<f4' | '<f2' = '<f4'): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${rows}, ${dim}), }`;
  header += ' '.repeat(63 - ((header.length + 10) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1')]);
}
