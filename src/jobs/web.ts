/**
 * `embedtune web`: serves the browser build's page on localhost — the page, its scripts,
 * onnxruntime-web's files and the model folders and JSONL files named — with the headers that
 * give onnxruntime-web its threads (cross-origin isolation). Nothing is fetched from elsewhere
 * and nothing is uploaded: the page trains in the tab.
 */
import { createServer, type ServerResponse } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, normalize, sep } from 'node:path';
import { DEFAULTS, PACKAGE_ROOT } from '../options.js';
import { resolveModel } from '../models/resolve.js';

export interface WebOptions {
  /** Port (0: any free one). */
  port?: number;
  /** Address to listen on (default: this machine only). */
  host?: string;
  /** Model folders, aliases or Hub ids offered on the page (`name=dir` names one). */
  models?: string[];
  /** JSONL files offered on the page (default: the bundled Chinese query/pos/neg sample). */
  data?: string[];
  quiet?: boolean;
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json', '.wasm': 'application/wasm', '.json': 'application/json', '.jsonl': 'application/jsonl; charset=utf-8' };

/** Named folders or files: `name=path`, else the path's last part. */
function named(items: string[]): Map<string, string> {
  return new Map(items.map((item) => {
    const at = item.indexOf('=');
    return at > 0 ? [item.slice(0, at), item.slice(at + 1)] : [basename(item.replace(/[\\/]+$/, '')), item];
  }));
}

/** `rel` inside `root`, or undefined for a path that climbs out of it or is not a file. */
function inside(root: string, rel: string): string | undefined {
  const path = normalize(join(root, decodeURIComponent(rel)));
  if (path !== root && !path.startsWith(root.endsWith(sep) ? root : root + sep)) return undefined;
  return existsSync(path) && statSync(path).isFile() ? path : undefined;
}

function send(res: ServerResponse, path: string | undefined): void {
  if (!path) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'content-length': statSync(path).size });
  createReadStream(path).pipe(res);
}

/**
 * Starts the server; resolves once it listens.
 * @example const { url, close } = await serveWeb({ port: 0, models: ['tiny=test/fixtures/models/tiny-bert'] });
 */
export async function serveWeb(o: WebOptions = {}): Promise<{ url: string; close: () => Promise<void> }> {
  const page = join(PACKAGE_ROOT, 'dist', 'web');
  if (!existsSync(join(page, 'app.js'))) throw new Error(`${page}: the browser build is missing; run \`npm run build\``);
  const ort = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-web')), '.');
  const models = new Map<string, string>();
  for (const [name, spec] of named(o.models?.length ? o.models : [...DEFAULTS.web.models])) models.set(name, await resolveModel(spec));
  const data = named(o.data?.length ? o.data : [...DEFAULTS.web.data]);
  for (const [name, file] of data) if (!existsSync(file) || !statSync(file).isFile()) throw new Error(`--data ${file}: not a file (${name})`);
  const server = createServer((req, res) => {
    // Cross-origin isolation: SharedArrayBuffer, so onnxruntime-web runs multi-threaded.
    res.setHeader('cross-origin-opener-policy', 'same-origin');
    res.setHeader('cross-origin-embedder-policy', 'require-corp');
    res.setHeader('cache-control', 'no-store');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const [, head = '', ...rest] = path.split('/');
    const tail = rest.join('/');
    if (path === '/') return send(res, join(page, 'index.html'));
    if (head === 'api' && (tail === 'models' || tail === 'data')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify([...(tail === 'models' ? models : data).keys()]));
      return;
    }
    if (head === 'ort') return send(res, inside(ort, tail));
    if (head === 'models') {
      const [name = '', ...file] = rest;
      const dir = models.get(decodeURIComponent(name));
      return send(res, dir ? inside(dir, file.join('/')) : undefined);
    }
    if (head === 'data') return send(res, data.get(decodeURIComponent(tail)));
    return send(res, inside(page, path.slice(1)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? DEFAULTS.web.port, o.host ?? DEFAULTS.web.host, () => resolve());
  });
  const address = server.address();
  const url = `http://${o.host ?? DEFAULTS.web.host}:${typeof address === 'object' && address ? address.port : o.port}/`;
  if (!o.quiet) process.stderr.write(`web: ${url} — models: ${[...models.keys()].join(', ')}; data: ${[...data.keys()].join(', ')} (Ctrl-C stops)\n`);
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
