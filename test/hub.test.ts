/**
 * Hub ids against a local server that answers the Hub's URLs (`/api/models/{id}/revision/{rev}`,
 * `/{id}/resolve/{rev}/{file}`, an LFS redirect to a CDN path with Range support) — never the
 * network. Checks the huggingface_hub cache layout, offline reuse, auth, a wrong id, and a
 * download cut midway that resumes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { resolveModel } from '../src/models/resolve.js';
import { ROOT, TINY_BERT, tempDir } from './helpers.js';

const SHA = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const FILES: Record<string, Buffer> = {
  'config.json': readFileSync(join(TINY_BERT, 'config.json')),
  'tokenizer.json': readFileSync(join(TINY_BERT, 'tokenizer.json')),
  'tokenizer_config.json': readFileSync(join(TINY_BERT, 'tokenizer_config.json')),
  'model.safetensors': readFileSync(join(TINY_BERT, 'model.safetensors')),
  '1_Pooling/config.json': Buffer.from(JSON.stringify({ word_embedding_dimension: 32, pooling_mode_mean_tokens: true })),
  'pytorch_model.bin': Buffer.from('not needed'),
  'README.md': Buffer.from('# tiny'),
};
const LFS = new Set(['model.safetensors', 'pytorch_model.bin']);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitSha = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

let server: Server;
let endpoint = '';
const log: { url: string; range?: string }[] = [];
/** Bytes after which the CDN drops the connection (once), or null. */
let dropAfter: number | null = null;
/** Send this many bytes of the next CDN body, then nothing (a stalled server), keeping the connection open. */
let stallAfter: number | null = null;
const stalled: ServerResponse[] = [];

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url!, 'http://x');
  log.push({ url: url.pathname, range: req.headers.range });
  const repoOk = (repo: string) => repo === 'org/tiny-bert' || (repo === 'org/gated' && req.headers.authorization === 'Bearer secret');
  const info = /^\/api\/models\/(\w+\/[\w-]+)\/revision\/([\w.-]+)$/.exec(url.pathname);
  // A hostile mirror: its sharded index names a shard outside the snapshot.
  if (info?.[1] === 'org/hostile') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify({ id: info[1], sha: SHA, siblings: [{ rfilename: 'config.json' }, { rfilename: 'model.safetensors.index.json' }] }));
  }
  if (/^\/org\/hostile\/resolve\/\w+\/model\.safetensors\.index\.json$/.test(url.pathname)) {
    const body = Buffer.from(JSON.stringify({ weight_map: { 'embeddings.word_embeddings.weight': '../../../../escaped.safetensors' } }));
    res.writeHead(200, { etag: `"${gitSha(body)}"`, 'content-length': String(body.length) });
    return void res.end(req.method === 'HEAD' ? undefined : body);
  }
  if (info?.[1] === 'org/not-json') return void res.writeHead(200).end('{"sha": "abc", "sibl');
  if (info) {
    if (info[1] === 'org/gated' && !repoOk(info[1])) return void res.writeHead(401).end('{"error":"Access to model org/gated is restricted."}');
    if (!repoOk(info[1]!) || !['main', SHA].includes(info[2]!)) return void res.writeHead(404).end('{"error":"Repository not found"}');
    res.writeHead(200, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify({ id: info[1], sha: SHA, siblings: Object.keys(FILES).map((rfilename) => ({ rfilename })) }));
  }
  // The Hub answers some files with a redirect within itself (as /api/resolve-cache/…).
  const resolve = /^\/(\w+\/[\w-]+)\/resolve\/(\w+)\/(.+)$/.exec(url.pathname) ?? /^\/api\/resolve-cache\/models\/(\w+\/[\w-]+)\/(\w+)\/(.+)$/.exec(url.pathname);
  if (resolve) {
    const [, repo, , file] = resolve;
    if (file === 'tokenizer_config.json' && url.pathname.includes('/resolve/')) {
      return void res.writeHead(307, { location: `/api/resolve-cache/models/${repo}/${SHA}/${file}`, 'x-repo-commit': SHA }).end();
    }
    if (!repoOk(repo!)) return void res.writeHead(repo === 'org/gated' ? 401 : 404).end();
    const body = FILES[file!];
    if (!body) return void res.writeHead(404).end();
    if (LFS.has(file!)) {
      res.writeHead(302, { location: `http://${req.headers.host}/cdn/${sha256(body)}?file=${file}`, 'x-repo-commit': SHA, 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length), etag: `"${gitSha(body)}"` });
      return void res.end();
    }
    res.writeHead(200, { etag: `"${gitSha(body)}"`, 'x-repo-commit': SHA, 'content-length': String(body.length) });
    return void res.end(req.method === 'HEAD' ? undefined : body);
  }
  if (url.pathname.startsWith('/cdn/')) {
    const body = FILES[url.searchParams.get('file')!];
    const from = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    const part = body!.subarray(from);
    res.writeHead(from ? 206 : 200, { 'content-length': String(part.length), ...(from ? { 'content-range': `bytes ${from}-${body!.length - 1}/${body!.length}` } : {}) });
    if (dropAfter !== null) {
      const n = dropAfter;
      dropAfter = null;
      res.write(part.subarray(0, n), () => res.destroy());
      return;
    }
    if (stallAfter !== null) {
      const n = stallAfter;
      stallAfter = null;
      res.write(part.subarray(0, n));
      stalled.push(res);
      return;
    }
    return void res.end(part);
  }
  res.writeHead(404).end();
}

/** The CLI in a child process, asynchronously: the local Hub server lives in this process. */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

describe('Hub ids (local server)', () => {
  before(async () => {
    server = createServer(handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('downloads only the needed files into the huggingface_hub cache layout, and encodes like the local folder', async () => {
    const cache = tempDir();
    log.length = 0;
    const dir = await resolveModel('org/tiny-bert', { env: { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache } });
    const root = join(cache, 'models--org--tiny-bert');
    assert.equal(dir, join(root, 'snapshots', SHA));
    assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf8'), SHA);
    assert.ok(lstatSync(join(dir, 'config.json')).isSymbolicLink());
    assert.equal(readlinkSync(join(dir, 'config.json')), join('..', '..', 'blobs', gitSha(FILES['config.json']!)));
    assert.equal(readlinkSync(join(dir, 'model.safetensors')), join('..', '..', 'blobs', sha256(FILES['model.safetensors']!)), 'LFS blobs are named by sha256');
    assert.equal(readlinkSync(join(dir, '1_Pooling', 'config.json')), join('..', '..', '..', 'blobs', gitSha(FILES['1_Pooling/config.json']!)));
    assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(FILES['model.safetensors']!));
    assert.ok(!log.some((l) => /pytorch_model|README/.test(l.url)), 'nothing unneeded is fetched');
    assert.ok(log.some((l) => l.url.startsWith('/api/resolve-cache/')), 'a redirect within the Hub is followed');
    assert.ok(readFileSync(join(dir, 'tokenizer_config.json')).equals(FILES['tokenizer_config.json']!));
    const a = await Encoder.load(dir, { threads: 1 });
    const b = await Encoder.load(TINY_BERT, { threads: 1, pooling: 'mean' });
    assert.equal(a.pooling, 'mean', 'the Hub folder\'s 1_Pooling config is read');
    assert.deepEqual((await a.encode(['lift'], { quiet: true })).data, (await b.encode(['lift'], { quiet: true })).data);
    await a.close();
    await b.close();

    // A second resolve fetches no file again; offline it needs no server at all.
    log.length = 0;
    await resolveModel('org/tiny-bert', { env: { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache } });
    assert.ok(!log.some((l) => l.url.includes('/cdn/')), 'cached blobs are not downloaded again');
    assert.equal(await resolveModel('org/tiny-bert', { env: { HF_ENDPOINT: 'http://127.0.0.1:1', HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' } }), dir);
    await assert.rejects(resolveModel('org/other', { env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' } }), /org\/other@main is not in the cache .* HF_HUB_OFFLINE/);
  });

  it('a wrong id, a 401 and an unreachable endpoint each get a clear message; HF_TOKEN opens a gated model', async () => {
    const cache = tempDir();
    const env = { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache };
    await assert.rejects(resolveModel('org/no-such-model', { env }), /org\/no-such-model: not a model folder here, and not found on http:\/\/127\.0\.0\.1:\d+ .*check the model id and --revision/);
    await assert.rejects(resolveModel('org/tiny-bert', { env, revision: 'v9' }), /not found .*revision v9/);
    await assert.rejects(resolveModel('org/gated', { env }), /org\/gated: 401 .*private or gated; set HF_TOKEN/);
    const dir = await resolveModel('org/gated', { env: { ...env, HF_TOKEN: 'secret' } });
    assert.ok(existsSync(join(dir, 'model.safetensors')));
    await assert.rejects(resolveModel('org/tiny-bert', { env: { HF_ENDPOINT: 'http://127.0.0.1:1', HF_HUB_CACHE: tempDir() } }), /cannot reach http:\/\/127\.0\.0\.1:1 .*HF_HUB_OFFLINE=1/);
  });

  it('no revision, commit or file name from the user or the server writes outside the cache', async () => {
    const cache = join(tempDir(), 'hub');
    const env = { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache };
    for (const revision of ['../../../x', '/etc/x', 'a/../../b', 'main\\..\\x']) {
      await assert.rejects(resolveModel('org/tiny-bert', { env, revision }), /revision .* is not a safe name/, revision);
      await assert.rejects(resolveModel('org/tiny-bert', { env: { ...env, HF_HUB_OFFLINE: '1' }, revision }), /is not a safe name/, `offline ${revision}`);
    }
    await assert.rejects(resolveModel('org/hostile', { env }), /model\.safetensors\.index\.json names the shard "\.\.\/\.\.\/\.\.\/\.\.\/escaped\.safetensors" .*not a safe name/);
    await assert.rejects(resolveModel('org/not-json', { env }), /answered the model info with invalid JSON/);
    const outside = readdirSync(join(cache, '..'));
    assert.deepEqual(outside, ['hub'], 'nothing was written beside the cache');
  });

  it('a download cut midway leaves no complete-looking file in snapshots/ and resumes with a Range request', async () => {
    const cache = tempDir();
    const env = { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache };
    dropAfter = 100_000;
    await assert.rejects(resolveModel('org/tiny-bert', { env }), /download of model\.safetensors was cut at \d+ of 421920 bytes.*run again to resume/);
    const root = join(cache, 'models--org--tiny-bert');
    assert.ok(!existsSync(join(root, 'snapshots', SHA, 'model.safetensors')), 'no snapshot link to a partial blob');
    const partial = readdirSync(join(root, 'blobs')).filter((f) => f.endsWith('.incomplete'));
    assert.deepEqual(partial, [`${sha256(FILES['model.safetensors']!)}.incomplete`]);
    log.length = 0;
    const dir = await resolveModel('org/tiny-bert', { env });
    assert.ok(log.some((l) => l.url.startsWith('/cdn/') && l.range && /^bytes=[1-9]\d*-$/.test(l.range)), 'resumed with a Range header');
    assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(FILES['model.safetensors']!), 'the resumed file is byte-identical');
    assert.deepEqual(readdirSync(join(root, 'blobs')).filter((f) => f.endsWith('.incomplete')), []);
  });

  it('a server that stalls mid-body is given up after HF_HUB_DOWNLOAD_TIMEOUT seconds, naming the file and how far; the next run resumes', { timeout: 60_000 }, async () => {
    const cache = tempDir();
    const env = { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, HF_HUB_DOWNLOAD_TIMEOUT: '1' };
    stallAfter = 50_000;
    await assert.rejects(resolveModel('org/tiny-bert', { env }), /download of model\.safetensors was cut at 50000 of 421920 bytes \(no data for 1 s \(HF_HUB_DOWNLOAD_TIMEOUT\)\); run again to resume/);
    for (const r of stalled.splice(0)) r.destroy();
    const root = join(cache, 'models--org--tiny-bert');
    assert.deepEqual(readdirSync(join(root, 'blobs')).filter((f) => f.endsWith('.incomplete')), [`${sha256(FILES['model.safetensors']!)}.incomplete`]);
    const dir = await resolveModel('org/tiny-bert', { env });
    assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(FILES['model.safetensors']!));
    await assert.rejects(resolveModel('org/tiny-bert', { env: { ...env, HF_HUB_DOWNLOAD_TIMEOUT: 'soon' } }), /HF_HUB_DOWNLOAD_TIMEOUT "soon": expected seconds > 0/);
  });

  it('the CLI and train configs take Hub ids (model_name_or_path: "org/tiny-bert")', async () => {
    const cache = tempDir();
    const dir = tempDir();
    const env = { ...process.env, HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, EMBEDTUNE_QUIET: '1' };
    writeFileSync(join(dir, 'texts.txt'), 'lift\ndrag\n');
    let r = await cli(['encode', '-m', 'org/tiny-bert', '--threads', '1', '-i', join(dir, 'texts.txt'), '-o', join(dir, 'e.npy')], env);
    assert.equal(r.status, 0, r.stderr);
    const config = join(dir, 'cfg.json');
    writeFileSync(config, JSON.stringify({ model_name_or_path: 'org/tiny-bert', revision: 'main', train_data: join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), output_dir: join(dir, 'run'), group_size: 2, max_query_len: 16, max_passage_len: 16, max_steps: 1, per_device_train_batch_size: 4, threads: 1 }));
    r = await cli(['train', '-c', config], { ...env, HF_HUB_OFFLINE: '1' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'run', 'model.safetensors')));
    r = await cli(['encode', '-m', 'org/missing', '-i', join(dir, 'texts.txt'), '-o', join(dir, 'x.npy')], env);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /org\/missing: not a model folder here, and not found/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
