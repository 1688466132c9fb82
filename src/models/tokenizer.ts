/**
 * Hugging Face `tokenizer.json` through @huggingface/tokenizers, with BERT/XLM-R style
 * truncation: keep the first max_length - 1 tokens and the closing special token.
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
  private constructor(
    private readonly tokenizer: HfTokenizer,
    /** The longest input the tokenizer config allows (model_max_length). */
    readonly modelMaxLength: number,
  ) {}

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
    return [...ids.slice(0, maxLength - 1), ids[ids.length - 1]!];
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
