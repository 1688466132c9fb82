/**
 * Hugging Face `tokenizer.json` through @huggingface/tokenizers, truncated as the Rust library
 * does (`truncation=True`): the text's tokens are cut so that, with the special tokens the
 * post-processor adds (BERT's [CLS] … [SEP], XLM-R's <s> … </s>, Qwen3-Embedding's trailing
 * <|endoftext|>), the sequence is max_length long; the closing special tokens are kept.
 * This file reads a model folder; the tokenizers themselves are in tokenizer-json.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRegexes, tokenizerRegexes } from './regex-guard.js';
import { UseTokenizer } from './use-tokenizer.js';
import { TextTokenizer, type Tokenizer } from './tokenizer-json.js';

export * from './tokenizer-json.js';

/** The tokenizer of a model directory: `tokenizer.json`, or USE-Lite's `vocab.json`. */
export function loadTokenizer(dir: string): Tokenizer {
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  if (config.tokenizer_class === 'UseTokenizer' && existsSync(join(dir, 'vocab.json'))) {
    return new UseTokenizer(readJson(join(dir, 'vocab.json')) as unknown as [string, number][], Number(config.model_max_length ?? 128), join(dir, 'vocab.json'));
  }
  return loadTextTokenizer(dir);
}

/** The Hugging Face tokenizer of a model folder (tokenizer.json, tokenizer_config.json), its regexes checked first. */
export function loadTextTokenizer(dir: string): TextTokenizer {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) {
    throw new Error(`${dir}: no tokenizer.json; save the model with a fast tokenizer (tokenizer.save_pretrained) first`);
  }
  const json = readJson(path);
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  checkRegexes(tokenizerRegexes(json), path);
  return TextTokenizer.fromJson(json, config, path);
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}
