import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { assertNotInput, DataError, readLines, writeAtomically, writeTogether } from '../src/data/jsonl.js';
import { spawnSync } from 'node:child_process';
import { loadRecords } from '../src/data/records.js';
import { loadBeir } from '../src/data/beir.js';
import { CRANFIELD, ROOT, tempDir } from './helpers.js';

function file(content: string | Buffer, name = 'in.jsonl'): string {
  const p = join(tempDir(), name);
  writeFileSync(p, content);
  return p;
}

const good = (q: string) => JSON.stringify({ query: q, pos_passage: ['p'], neg_passage: ['n'] });

describe('record validation names file, line and field', () => {
  const cases: [string, string, RegExp][] = [
    ['malformed JSON', `${good('a')}\n{"query": "b",\n`, /in\.jsonl:2: malformed JSON/],
    ['missing query', `${good('a')}\n{"pos_passage": ["p"]}\n`, /in\.jsonl:2: field "query": missing/],
    ['non-string query', `{"query": 5, "pos_passage": ["p"]}\n`, /in\.jsonl:1: field "query": expected a string, got number/],
    ['empty positives', `${good('a')}\n${good('b')}\n{"query": "c", "pos_passage": []}\n`, /in\.jsonl:3: field "pos_passage": empty/],
    ['missing positives', `{"query": "c"}\n`, /in\.jsonl:1: field "pos_passage": missing/],
    ['non-string list item', `{"query": "c", "pos_passage": ["x", 3]}\n`, /in\.jsonl:1: field "pos_passage\[1\]": expected a string, got number/],
    ['non-string negative', `{"query": "c", "pos_passage": ["x"], "neg_passage": [null]}\n`, /field "neg_passage\[0\]": expected a string, got null/],
    ['blank line in the middle', `${good('a')}\n\n${good('b')}\n`, /in\.jsonl:2: blank line in the middle/],
    ['not an object', `[1, 2]\n`, /in\.jsonl:1: expected a JSON object/],
    ['mixed shapes', `${good('a')}\n{"query": "b", "pos": ["p"]}\n`, /in\.jsonl:2: field "pos_passage": this file uses "pos_passage"/],
  ];
  for (const [name, content, pattern] of cases) {
    it(name, async () => {
      const p = file(content);
      await assert.rejects(loadRecords(p, { requirePositives: true }), (e: Error) => e instanceof DataError && pattern.test(e.message));
    });
  }

  it('invalid UTF-8', async () => {
    const p = file(Buffer.concat([Buffer.from(good('a') + '\n{"query": "'), Buffer.from([0xff, 0xfe]), Buffer.from('", "pos_passage": ["p"]}\n')]));
    await assert.rejects(loadRecords(p, { requirePositives: true }), /in\.jsonl:2: invalid UTF-8/);
  });

  it('--skip-invalid skips, counts by reason and keeps the good records', async () => {
    const content = [good('a'), '{"query": 1, "pos_passage": ["p"]}', '{broken', good('b'), '', good('c'), '{"query": "d", "pos_passage": []}'].join('\n') + '\n';
    const { records, skips } = await loadRecords(file(content), { requirePositives: true, skipInvalid: true });
    assert.deepEqual(records.map((r) => r.query), ['a', 'b', 'c']);
    assert.equal(skips.total, 4);
    assert.match(skips.summary(), /skipped 4 invalid records/);
    assert.match(skips.summary(), /blank line in the middle/);
  });

  it('detects the BGE shape and carries extra fields', async () => {
    const p = file(`{"query": "a", "pos": ["p"], "neg": ["n"], "prompt": "x", "type": "normal"}\n{"query": "b", "pos": ["q"]}\n`);
    const { records, shape } = await loadRecords(p, { requirePositives: true });
    assert.equal(shape, 'bge');
    assert.deepEqual(records[0]!.neg, ['n']);
    assert.equal(records[0]!.raw.prompt, 'x');
    assert.deepEqual(records[1]!.neg, []);
  });

  it('accepts CRLF, a BOM and trailing blank lines', async () => {
    const p = file('\ufeff' + good('a') + '\r\n' + good('b') + '\r\n\r\n\n');
    const { records } = await loadRecords(p);
    assert.deepEqual(records.map((r) => [r.query, r.line]), [['a', 1], ['b', 2]]);
  });

  it('streams lines across chunk boundaries', async () => {
    const long = 'x'.repeat(3 << 20); // longer than one 1 MiB read
    const p = file(`{"query": "${long}", "pos_passage": ["p"]}\n${good('b')}`);
    const lines = [];
    for await (const l of readLines(p)) lines.push(l.text.length);
    assert.equal(lines.length, 2);
  });
});

describe('atomic output', () => {
  it('leaves no file (and no temp file) when writing fails', async () => {
    const dir = tempDir();
    const out = join(dir, 'out.jsonl');
    await assert.rejects(
      writeAtomically(out, async (w) => {
        await w.write('half\n');
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('replaces the target only on commit', async () => {
    const out = file('old\n', 'out.jsonl');
    await writeAtomically(out, async (w) => w.write('new\n'));
    assert.equal(readFileSync(out, 'utf8'), 'new\n');
  });

  it('a failing stream (missing directory) rejects naming the path instead of waiting forever', async () => {
    const out = join(tempDir(), 'no-such-dir', 'out.jsonl');
    const big = 'x'.repeat(100_000) + '\n'; // past the stream's buffer: write() must wait for room
    await assert.rejects(
      writeAtomically(out, async (w) => {
        for (let i = 0; i < 50; i++) await w.write(big);
      }),
      (e: Error) => e.message.includes(out) && /ENOENT/.test(e.message),
    );
  });

  it('a full disk rejects naming the path and keeps the previous output', async (t) => {
    const mnt = join(tempDir(), 'small');
    mkdirSync(mnt);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status !== 0) return t.skip('cannot mount a small tmpfs here');
    try {
      const out = join(mnt, 'out.jsonl');
      writeFileSync(out, 'previous\n');
      await assert.rejects(
        writeAtomically(out, async (w) => {
          for (let i = 0; i < 20; i++) await w.write('y'.repeat(10_000) + '\n');
        }),
        (e: Error) => e.message.includes(out) && /ENOSPC/.test(e.message),
      );
      assert.equal(readFileSync(out, 'utf8'), 'previous\n');
      assert.deepEqual(readdirSync(mnt), ['out.jsonl'], 'the temp file is removed');
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  it('refuses to write onto an input', () => {
    const p = file(good('a'));
    assert.throws(() => assertNotInput(p, [p]), /refusing to write .*it is an input file/);
  });
});

describe('outputs written together (main + report)', () => {
  const setup = () => {
    const dir = tempDir();
    const main = join(dir, 'out.jsonl');
    const side = join(dir, 'out.dropped.jsonl');
    writeFileSync(main, 'old main\n');
    writeFileSync(side, 'old report\n');
    const outputs = [{ path: main, fill: (w: { write: (t: string) => Promise<void> }) => w.write('new main\n') }, { path: side, fill: (w: { write: (t: string) => Promise<void> }) => w.write('new report\n') }];
    return { dir, main, side, outputs };
  };
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : 'absent');

  it('stopped between the renames (as by a kill), a new main output never sits beside the old report', async () => {
    const { dir, main, side, outputs } = setup();
    await assert.rejects(writeTogether(outputs, (p) => { if (p === main) throw new Error('killed'); }), /killed/);
    assert.equal(read(main), 'new main\n');
    assert.equal(read(side), 'absent');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });

  it('a failure while filling leaves both old files and no temp file; success replaces both', async () => {
    const { dir, main, side, outputs } = setup();
    await assert.rejects(writeTogether([outputs[0]!, { path: side, fill: async () => { throw new Error('report failed'); } }]), /report failed/);
    assert.deepEqual([read(main), read(side)], ['old main\n', 'old report\n']);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
    await writeTogether(outputs);
    assert.deepEqual([read(main), read(side)], ['new main\n', 'new report\n']);
  });
});

describe('BEIR', () => {
  it('reads corpus, queries and graded qrels', async () => {
    const set = await loadBeir(CRANFIELD);
    assert.equal(set.corpus.length, 466);
    assert.equal(set.queries.size, 60);
    const grades = new Set([...set.qrels.values()].flatMap((m) => [...m.values()]));
    assert.ok(grades.size > 1, 'graded scores are kept');
    assert.ok(set.corpus[0]!.text.length > 0);
  });

  it('counts qrels that name unknown queries (ignored) or documents (kept as relevant), and convert and eval say so', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'qrels'));
    writeFileSync(join(dir, 'corpus.jsonl'), '{"_id": "d1", "text": "lift"}\n{"_id": "d2", "text": "drag"}\n');
    writeFileSync(join(dir, 'queries.jsonl'), '{"_id": "q1", "text": "what is lift"}\n');
    writeFileSync(join(dir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t2\nq7\td2\t1\n');
    const set = await loadBeir(dir);
    assert.deepEqual(set.unknown, { queries: 1, documents: 1 });
    assert.deepEqual([...set.qrels.keys()], ['q1']);
    assert.deepEqual([...set.qrels.get('q1')!], [['d1', 1], ['d9', 2]]);
    const out = join(tempDir(), 'out.jsonl'); // outside the BEIR folder, which convert reads
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), 'convert', '--beir', dir, '-o', out], { encoding: 'utf8', env: { ...process.env, EMBEDTUNE_QUIET: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /qrels name ids the folder lacks: 1 rows a query not in queries\.jsonl \(ignored\), 1 a document not in corpus\.jsonl/);
  });

  it('names a missing qrels file', async () => {
    await assert.rejects(loadBeir(CRANFIELD, 'dev'), /not a BEIR folder: missing .*qrels\/dev\.tsv/);
  });
});
