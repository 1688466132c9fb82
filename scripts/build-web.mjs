// Bundles the browser build (src/web) and its page into dist/web with esbuild: ESM for browsers,
// onnxruntime-web left to the page's import map. The shared code's one value import of
// onnxruntime-node (runtime/tensor.ts: the Tensor class) is mapped onto onnxruntime-web. esbuild
// refuses any Node built-in reached from src/web — the check that the browser build stays free
// of them.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

const ortFromWeb = {
  name: 'onnxruntime-node-to-web',
  setup(b) {
    b.onResolve({ filter: /^onnxruntime-node$/ }, () => ({ path: 'onnxruntime-node', namespace: 'ort-shim' }));
    b.onLoad({ filter: /.*/, namespace: 'ort-shim' }, () => ({ contents: "import { Tensor } from 'onnxruntime-web'; export default { Tensor };", loader: 'js' }));
  },
};

mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: { 'embedtune-web': 'src/web/index.ts', app: 'src/web/page/app.ts' },
  outdir: 'dist/web',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  splitting: true,
  sourcemap: true,
  external: ['onnxruntime-web'],
  plugins: [ortFromWeb],
  logLevel: 'warning',
});
copyFileSync('src/web/page/index.html', 'dist/web/index.html');
