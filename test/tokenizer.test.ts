import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { resolveModelDir } from '../src/models/use-lite.js';
import { FIXTURES, TINY_BERT, TINY_XLMR, tempDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Real English and Chinese text, joined into long documents with and without spaces. */
function longTexts(): string[] {
  const zh = readFileSync(join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { query: string; pos: string[] });
  const en = readFileSync(join(ROOT, 'data', 'cranfield', 'corpus.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((l) => (JSON.parse(l) as { text: string }).text);
  const chinese = zh.flatMap((r) => [r.query, ...r.pos]).join('');
  const english = en.join(' ');
  return [
    english.slice(0, 40_000),
    chinese.slice(0, 40_000),
    english.slice(0, 3000) + chinese.slice(0, 30_000),
    'x'.repeat(20_000) + ' ' + english.slice(0, 5000),
    '='.repeat(50_000),
    '😀'.repeat(5000) + english.slice(0, 10_000),
  ];
}

describe('tokenizing long texts', () => {
  for (const [name, dir] of [['BERT WordPiece', TINY_BERT], ['XLM-R Unigram', TINY_XLMR], ['USE-Lite', 'use-lite']] as const) {
    it(`${name}: a long text gives the same ids as tokenizing it whole, then truncating`, () => {
      const tok = loadTokenizer(dir === 'use-lite' ? resolveModelDir('use-lite') : dir);
      for (const text of longTexts()) {
        const whole = tok.encode(text, 1e9); // a limit past the text: no cut is tried
        for (const max of [8, 64, 128, 512]) {
          const expected = whole.length <= max ? whole : name === 'USE-Lite' ? whole.slice(0, max) : [...whole.slice(0, max - 1), whole.at(-1)!];
          assert.deepEqual(tok.encode(text, max), expected, `${text.slice(0, 20)}… at ${max}`);
        }
      }
    });
  }

  it('a 20 MB text: only a prefix of it is tokenized', async () => {
    const { tokenizePrefix } = await import('../src/models/text-cut.js');
    const text = 'Experimental investigation of the aerodynamics of a wing in a slipstream. '.repeat(270_000);
    assert.equal(loadTokenizer(TINY_XLMR).encode(text, 512).length, 512);
    // Counted, not timed: the characters handed to the tokenizer (one id per word here).
    let chars = 0;
    const ids = tokenizePrefix(text, 512, (t) => ((chars += t.length), t.split(' ').map((w) => w.length)));
    assert.ok(ids.length >= 512 + 32);
    assert.ok(chars <= 16 * 512, `${chars} of ${text.length} characters tokenized`);
  });
});

describe('loading a tokenizer from `node --input-type=module -e`', () => {
  it("checks its regular expressions there too (the probe worker does not inherit the parent's --input-type)", async () => {
    const { spawnSync } = await import('node:child_process');
    // Before the fix the probe died at once and the load waited out a 10-minute safety limit.
    const url = new URL('../src/models/tokenizer.js', import.meta.url).href;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { loadTokenizer } = await import(${JSON.stringify(url)}); console.log(loadTokenizer(${JSON.stringify(TINY_XLMR)}).encode('lift', 16).length > 0)`], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'true', r.stderr);
  });
});

describe('hostile tokenizer files', () => {
  function withTokenizer(edit: (json: Record<string, unknown>) => unknown): string {
    const dir = join(tempDir(), 'model');
    cpSync(TINY_BERT, dir, { recursive: true });
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer.json'), typeof edit(json) === 'string' ? (edit(json) as string) : JSON.stringify(json));
    return dir;
  }

  it('a catastrophically backtracking pre-tokenizer regex is refused at load, naming the file and pattern', () => {
    const dir = withTokenizer((json) => {
      json.pre_tokenizer = { type: 'Sequence', pretokenizers: [json.pre_tokenizer, { type: 'Split', pattern: { Regex: '(\\w+\\s?)+$' }, behavior: 'Isolated', invert: false }] };
    });
    const start = performance.now();
    assert.throws(() => loadTokenizer(dir), (e: Error) => e.message.includes(join(dir, 'tokenizer.json')) && e.message.includes('(\\\\w+\\\\s?)+$') && /backtracks/.test(e.message));
    assert.ok(performance.now() - start < 10_000);
  });

  it('the same answers with every core busy: accepted patterns stay accepted, a catastrophic one is still refused', async () => {
    const { spawn } = await import('node:child_process');
    const { availableParallelism } = await import('node:os');
    const { checkRegexes } = await import('../src/models/regex-guard.js');
    // Load ~6 per core (busier than the CI runners where the wall-clock probe refused " {2,}").
    const busy = Array.from({ length: 6 * availableParallelism() }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    try {
      await new Promise((r) => setTimeout(r, 500)); // let them start
      // 300 harmless patterns: several seconds of probing under this load, each pattern well within its budget.
      const many = Array.from({ length: 300 }, (_, i) => `'s|'t|'re| ?\\p{L}+| ?\\p{N}+|\\s+(?!\\S)|\\s+|x${i}`);
      assert.doesNotThrow(() => checkRegexes(many, 'many.json'));
      for (let i = 0; i < 3; i++) {
        assert.doesNotThrow(() => loadTokenizer(TINY_XLMR), 'tiny-xlmr\'s own " {2,}"');
        assert.doesNotThrow(() => checkRegexes(["'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "(?:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"], 'busy.json'), 'GPT-2 and Qwen2 pre-tokenizers');
      }
      assert.throws(() => checkRegexes(['(a|a)+$'], 'busy.json'), /busy\.json: the regular expression "\(a\|a\)\+\$" backtracks catastrophically/);
    } finally {
      for (const b of busy) b.kill('SIGKILL');
    }
  });

  it('a harmless regex (GPT-2 style) is accepted', () => {
    const dir = withTokenizer((json) => {
      json.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false }, json.pre_tokenizer] };
    });
    assert.ok(loadTokenizer(dir).encode('hello world', 16).length > 2);
  });

  it('deeply nested JSON names the file', () => {
    const dir = withTokenizer((json) => {
      let normalizer: unknown = json.normalizer;
      for (let i = 0; i < 200_000; i++) normalizer = { type: 'Sequence', normalizers: [normalizer] };
      // JSON.stringify itself recurses: build the text by hand.
      const text = JSON.stringify({ ...json, normalizer: '@@' });
      return text.replace('"@@"', '{"type":"Sequence","normalizers":['.repeat(200_000) + JSON.stringify(json.normalizer) + ']}'.repeat(200_000));
    });
    assert.throws(() => loadTokenizer(dir), (e: Error) => e.message.startsWith(join(dir, 'tokenizer.json')));
  });
});

describe('truncation keeps the closing special tokens, as the Rust tokenizers library does', () => {
  it('without a post-processor nothing is kept from the end: the first max_length tokens', () => {
    const dir = join(tempDir(), 'model');
    cpSync(join(FIXTURES, 'models', 'tiny-qwen2'), dir, { recursive: true });
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    const withEnd = loadTokenizer(dir).encode('the lift and drag of a swept wing in a slipstream', 1000);
    json.post_processor = null;
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const plain = loadTokenizer(dir);
    assert.deepEqual(plain.encode('the lift and drag of a swept wing in a slipstream', 1000), withEnd.slice(0, -1));
    assert.deepEqual(plain.encode('the lift and drag of a swept wing in a slipstream', 5), withEnd.slice(0, 5));
  });
});
