/**
 * Hugging Face `tokenizer.json` through @huggingface/tokenizers, truncated as the Rust library
 * does (`truncation=True`): the text's tokens are cut so that, with the special tokens the
 * post-processor adds (BERT's [CLS] … [SEP], XLM-R's <s> … </s>, Qwen3-Embedding's trailing
 * <|endoftext|>), the sequence is max_length long; the closing special tokens are kept.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { tokenizePrefix } from './text-cut.js';
import { checkRegexes, tokenizerRegexes } from './regex-guard.js';
import { UseTokenizer } from './use-tokenizer.js';

/** What the encoder and trainer need of a tokenizer. */
export interface Tokenizer {
  /** Token ids, special tokens included, truncated to `maxLength`. */
  encode(text: string, maxLength: number): number[];
  readonly modelMaxLength: number;
  /** Special tokens appended after the text (BERT's [SEP], Qwen3-Embedding's <|endoftext|>); 0 if none. */
  readonly closing: number;
}

/** The tokenizer of a model directory: `tokenizer.json`, or USE-Lite's `vocab.json`. */
export function loadTokenizer(dir: string): Tokenizer {
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  if (config.tokenizer_class === 'UseTokenizer' && existsSync(join(dir, 'vocab.json'))) {
    return new UseTokenizer(readJson(join(dir, 'vocab.json')) as unknown as [string, number][], Number(config.model_max_length ?? 128));
  }
  return TextTokenizer.load(dir);
}

export class TextTokenizer implements Tokenizer {
  /** How many special tokens the post-processor appends after the text (kept when truncating). */
  readonly closing: number;

  private constructor(
    private readonly tokenizer: HfTokenizer,
    /** The longest input the tokenizer config allows (model_max_length). */
    readonly modelMaxLength: number,
  ) {
    const withSpecials: number[] = tokenizer.encode('a').ids;
    const plain: number[] = tokenizer.encode('a', { add_special_tokens: false }).ids;
    const at = withSpecials.findIndex((_, i) => plain.every((id, j) => withSpecials[i + j] === id));
    this.closing = at < 0 ? 0 : withSpecials.length - at - plain.length;
  }

  static load(dir: string): TextTokenizer {
    const path = join(dir, 'tokenizer.json');
    if (!existsSync(path)) {
      throw new Error(`${dir}: no tokenizer.json; save the model with a fast tokenizer (tokenizer.save_pretrained) first`);
    }
    const json = readJson(path);
    const configPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(configPath) ? readJson(configPath) : {};
    const maxLen = typeof config.model_max_length === 'number' && config.model_max_length < 1e9 ? config.model_max_length : 512;
    checkRegexes(tokenizerRegexes(json), path);
    try {
      return new TextTokenizer(new HfTokenizer(json, config), maxLen);
    } catch (e) {
      throw new Error(`${path}: not a tokenizer @huggingface/tokenizers can load (${(e as Error).message})`);
    }
  }

  /** Token ids with special tokens, truncated to `maxLength`. */
  encode(text: string, maxLength: number): number[] {
    const ids = this.untruncated(text, maxLength);
    if (ids.length <= maxLength) return ids;
    return [...ids.slice(0, maxLength - this.closing), ...ids.slice(ids.length - this.closing)];
  }

  private untruncated(text: string, maxLength: number): number[] {
    return tokenizePrefix(text, maxLength, (t) => this.tokenizer.encode(t).ids);
  }
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}
