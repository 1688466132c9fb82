/**
 * Models by Hugging Face Hub id (`BAAI/bge-m3`), downloaded into the cache layout of Python's
 * huggingface_hub, so Python and embedtune share one cache:
 *
 *   $HF_HUB_CACHE (default $HF_HOME/hub, ~/.cache/huggingface/hub)
 *     models--BAAI--bge-m3/
 *       refs/main                       the commit sha `main` pointed to
 *       blobs/<etag>                    file contents (sha256 for LFS files); <etag>.incomplete while downloading
 *       snapshots/<sha>/config.json  →  ../../blobs/<etag>
 *
 * Only the files a model needs are fetched (config, tokenizer, safetensors weights or their
 * shards, sentence-transformers pooling files). A download that breaks off keeps its
 * `.incomplete` blob and resumes with an HTTP Range request next time; a snapshot link is made
 * only once its blob is complete. HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=1 work as in
 * Python. @huggingface/hub's cache helpers have neither progress nor resumption, hence fetch.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { publish } from '../util/atomic.js';

export const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** What a model folder needs; weights are picked separately (single file or index + shards). */
const NEEDED = [
  'config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'sentencepiece.bpe.model', 'vocab.txt', 'vocab.json',
  'added_tokens.json', 'modules.json', 'sentence_bert_config.json', 'config_sentence_transformers.json', '1_Pooling/config.json',
];

export interface HubOptions {
  revision?: string;
  /** A progress bar per file (bytes); the job layer passes its own. */
  progress?: (label: string, total: number) => { tick(n: number): void; done(): void };
  /** Environment to read HF_* from (tests). */
  env?: NodeJS.ProcessEnv;
}

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'), 'hub');
}

function token(env: NodeJS.ProcessEnv): string | undefined {
  if (env.HF_TOKEN) return env.HF_TOKEN;
  if (env.HUGGING_FACE_HUB_TOKEN) return env.HUGGING_FACE_HUB_TOKEN;
  const file = join(env.HF_HOME ?? join(homedir(), '.cache', 'huggingface'), 'token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

const offline = (env: NodeJS.ProcessEnv) => ['1', 'ON', 'YES', 'TRUE'].includes((env.HF_HUB_OFFLINE ?? '').toUpperCase());

/** The Hub said no: a clear one-line reason for a status code. */
function statusError(status: number, repo: string, what: string, endpoint: string, hasToken: boolean): Error {
  if (status === 401 || status === 403) {
    return new Error(`${repo}: ${status} from ${endpoint} for ${what}: the model is private or gated; ${hasToken ? 'your HF_TOKEN has no access to it' : 'set HF_TOKEN to a token with access'}`);
  }
  if (status === 404) return new Error(`${repo}: not found on ${endpoint} (${what}); check the model id and --revision`);
  return new Error(`${repo}: ${endpoint} answered ${status} for ${what}`);
}

/**
 * Seconds without a byte after which a Hub request or download is given up (the
 * `.incomplete` kept for the next run): HF_HUB_DOWNLOAD_TIMEOUT, as huggingface_hub reads it;
 * default 10.
 */
export function stallSeconds(env: NodeJS.ProcessEnv): number {
  const v = env.HF_HUB_DOWNLOAD_TIMEOUT;
  if (v === undefined || v === '') return 10;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`HF_HUB_DOWNLOAD_TIMEOUT ${JSON.stringify(v)}: expected seconds > 0`);
  return n;
}

/** An abort signal that fires when `poke` has not been called for `seconds` (a stalled server). */
function stallSignal(seconds: number): { signal: AbortSignal; poke: () => void; stop: () => void } {
  const ac = new AbortController();
  let timer: NodeJS.Timeout;
  const poke = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(new Error(`no data for ${seconds} s (HF_HUB_DOWNLOAD_TIMEOUT)`)), seconds * 1000);
  };
  poke();
  return { signal: ac.signal, poke, stop: () => clearTimeout(timer) };
}

async function request(url: string, init: RequestInit, what: string): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const cause = (e as { cause?: Error }).cause?.message ?? (e as Error).message;
    throw new Error(`cannot reach ${new URL(url).origin} for ${what} (${cause}); set HF_HUB_OFFLINE=1 to use the cache only`);
  }
}

/**
 * A name the Hub or the user gives that becomes a path in the cache (a revision, a commit, a
 * file): relative, `/`-separated segments of letters, digits, `.`, `_`, `-` (and, for file
 * names, spaces, `+`, `=`, `@`, `,`), none empty, `.` or `..` — so no name writes outside the cache.
 */
export function checkCacheName(name: unknown, what: string, file = false): string {
  const segment = file ? /^[\w .+=@,-]+$/ : /^[\w.-]+$/;
  if (typeof name !== 'string' || !name.split('/').every((s) => segment.test(s) && s !== '.' && s !== '..')) {
    throw new Error(`${what} ${JSON.stringify(name)} is not a safe name (relative, / between plain segments, no "..")`);
  }
  return name;
}

/**
 * The local snapshot folder of a Hub model, downloading what is missing.
 * @example
 *   const dir = await hubSnapshot('BAAI/bge-m3', { revision: 'main' });
 */
export async function hubSnapshot(repo: string, o: HubOptions = {}): Promise<string> {
  const env = o.env ?? process.env;
  const revision = checkCacheName(o.revision ?? 'main', 'revision');
  if (!HUB_ID.test(repo) || repo.split('/').some((s) => s === '.' || s === '..')) throw new Error(`${JSON.stringify(repo)} is not a Hub model id (owner/name)`);
  const root = join(hubCacheDir(env), `models--${repo.replace('/', '--')}`);
  if (offline(env)) return cachedSnapshot(root, repo, revision);
  const endpoint = (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/$/, '');
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) throw new Error(`HF_ENDPOINT ${JSON.stringify(env.HF_ENDPOINT)} is not an http(s) URL (the default is https://huggingface.co)`);
  const auth = token(env);
  const headers: Record<string, string> = auth ? { authorization: `Bearer ${auth}` } : {};

  const infoUrl = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
  const res = await request(infoUrl, { headers, signal: AbortSignal.timeout(stallSeconds(env) * 1000) }, `${repo}@${revision}`);
  if (!res.ok) throw statusError(res.status, repo, `revision ${revision}`, endpoint, !!auth);
  let info: { sha: string; siblings: { rfilename: string }[] };
  try {
    info = (await res.json()) as typeof info;
  } catch {
    throw new Error(`${repo}@${revision}: ${endpoint} answered the model info with invalid JSON`);
  }
  if (!Array.isArray(info?.siblings)) throw new Error(`${repo}@${revision}: ${endpoint}'s model info has no "siblings" list of files`);
  if (typeof info.sha !== 'string' || !/^[0-9a-f]{7,64}$/i.test(info.sha)) throw new Error(`${repo}@${revision}: ${endpoint} gave the commit ${JSON.stringify(info.sha)}, not a hexadecimal sha`);
  const files = new Set(info.siblings.map((s) => s?.rfilename));
  const wanted = NEEDED.filter((f) => files.has(f));
  let shards: string[] = [];
  if (files.has('model.safetensors')) wanted.push('model.safetensors');
  else if (files.has('model.safetensors.index.json')) {
    await fetchFile(endpoint, repo, info.sha, 'model.safetensors.index.json', root, headers, o);
    const index = JSON.parse(readFileSync(join(root, 'snapshots', info.sha, 'model.safetensors.index.json'), 'utf8'));
    const names = Object.values((index?.weight_map ?? {}) as Record<string, unknown>);
    shards = [...new Set(names.map((n) => checkCacheName(n, `${repo}@${revision}: model.safetensors.index.json names the shard`, true)))].sort();
  } else throw new Error(`${repo}@${revision}: no model.safetensors (or sharded index) on the Hub; embedtune reads safetensors only`);
  for (const f of [...wanted, ...shards]) await fetchFile(endpoint, repo, info.sha, f, root, headers, o);
  if (revision !== info.sha) {
    mkdirSync(join(root, 'refs'), { recursive: true });
    writeFileSync(join(root, 'refs', revision), info.sha);
  }
  return join(root, 'snapshots', info.sha);
}

/** HF_HUB_OFFLINE: the snapshot `revision` (a ref or a commit) already in the cache. */
function cachedSnapshot(root: string, repo: string, revision: string): string {
  const ref = join(root, 'refs', revision);
  const sha = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : revision;
  const dir = join(root, 'snapshots', sha);
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${repo}@${revision} is not in the cache (${root}) and HF_HUB_OFFLINE is set`);
  return dir;
}

/** Downloads one file into blobs/ (resuming a partial one) and links it from the snapshot. */
async function fetchFile(endpoint: string, repo: string, sha: string, file: string, root: string, headers: Record<string, string>, o: HubOptions): Promise<void> {
  const link = join(root, 'snapshots', sha, file);
  if (existsSync(link)) return;
  // Metadata from the Hub itself, not from the CDN it may redirect to: the blob's etag and size.
  // A redirect within the Hub (a relative Location) is followed, as huggingface_hub does; an
  // absolute one leads to the CDN, where the file is fetched from.
  let url = `${endpoint}/${repo}/resolve/${sha}/${file}`;
  let head = await request(url, { method: 'HEAD', headers, redirect: 'manual' }, file);
  for (let hops = 0; head.status >= 300 && head.status < 400 && hops < 5; hops++) {
    const location = head.headers.get('location') ?? '';
    if (/^[a-z][a-z0-9+.-]*:/i.test(location)) break; // the CDN: keep this response's metadata
    url = new URL(location, url).toString();
    head = await request(url, { method: 'HEAD', headers, redirect: 'manual' }, file);
  }
  if (head.status >= 400) throw statusError(head.status, repo, file, endpoint, !!headers.authorization);
  const etag = (head.headers.get('x-linked-etag') ?? head.headers.get('etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
  if (!etag || /[/\\]/.test(etag)) throw new Error(`${repo}: ${endpoint} gave no usable ETag for ${file}`);
  const size = Number(head.headers.get('x-linked-size') ?? head.headers.get('content-length') ?? NaN);
  const location = head.status >= 300 && head.headers.get('location');
  const source = location ? new URL(location, url).toString() : url;
  const blob = join(root, 'blobs', etag);
  mkdirSync(dirname(blob), { recursive: true });
  if (!existsSync(blob)) await download(source, blob, size, file, location ? {} : headers, o);
  mkdirSync(dirname(link), { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(relative(dirname(link), blob), link);
}

/** Streams `url` into `<blob>.incomplete` (appending from where a broken run stopped), then renames it to `blob`. */
async function download(url: string, blob: string, size: number, file: string, headers: Record<string, string>, o: HubOptions): Promise<void> {
  const partial = `${blob}.incomplete`;
  const have = existsSync(partial) ? statSync(partial).size : 0;
  const stall = stallSignal(stallSeconds(o.env ?? process.env));
  const res = await request(url, { headers: have > 0 ? { ...headers, range: `bytes=${have}-` } : headers, signal: stall.signal }, file).catch((e) => {
    stall.stop();
    throw e;
  });
  if (!res.ok || !res.body) throw new Error(`download of ${file} failed: HTTP ${res.status}`);
  const resumed = res.status === 206;
  const fd = openSync(partial, resumed ? 'a' : 'w');
  const total = Number.isFinite(size) ? size : Number(res.headers.get('content-length') ?? 0) + (resumed ? have : 0);
  const bar = o.progress?.(`download ${file}`, total);
  let written = resumed ? have : 0;
  bar?.tick(written);
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      stall.poke();
      writeSync(fd, chunk);
      written += chunk.byteLength;
      bar?.tick(chunk.byteLength);
    }
  } catch (e) {
    const why = stall.signal.aborted ? (stall.signal.reason as Error).message : (e as Error).message;
    throw new Error(`download of ${file} was cut at ${written} of ${total} bytes (${why}); run again to resume from ${partial}`);
  } finally {
    stall.stop();
    closeSync(fd);
    bar?.done();
  }
  if (Number.isFinite(size) && written !== size) {
    throw new Error(`download of ${file} was cut at ${written} of ${size} bytes; run again to resume from ${partial}`);
  }
  publish(partial, blob);
}
