/**
 * Query and passage templates: `"query: {text}"`, a prefix (`"Represent this sentence: "`,
 * FlagEmbedding's instruction and sentence-transformers' prompts are prefixes), or a named
 * preset. A model folder carries its prompts in sentence-transformers'
 * `config_sentence_transformers.json` (`{"prompts": {"query": …, "document": …}}`); embedtune
 * writes them there on export, and the full templates (a PromptEOL template has text after
 * `{text}`, which a prefix cannot express) under `embedtune_templates`.
 */
import { existsSync } from 'node:fs';
import { readJsonFile } from '../util/json.js';
import { join } from 'node:path';

export interface Templates {
  query: string;
  passage: string;
}

/** Qwen3-Embedding's default retrieval task. */
export const QWEN3_TASK = 'Given a web search query, retrieve relevant passages that answer the query';

/**
 * Named presets. `prompteol`: the spec's (PaddleNLP run_embedding) defaults for LLM embedders,
 * PromptEOL-style. `qwen3-embedding`: Qwen3-Embedding's instruction form (`{task}` is
 * replaced by the task description), passages as they are.
 */
export const PRESETS: Record<string, Templates> = {
  prompteol: {
    query: 'Query: {text}\nUse one word to summarize the query\'s relevant information. The word is: "',
    passage: 'Text: {text}\nUse one word to summarize the text\'s content. The word is: "',
  },
  'qwen3-embedding': { query: 'Instruct: {task}\nQuery:{text}', passage: '{text}' },
};

/** A template as given: with `{text}` as is, otherwise a prefix. */
export function asTemplate(value: string): string {
  return value.includes('{text}') ? value : value + '{text}';
}

/** The prefix a template is, if it is one (`{text}` once, at the end). */
export function asPrefix(template: string): string | undefined {
  return template.endsWith('{text}') && template.indexOf('{text}') === template.length - 6 ? template.slice(0, -6) : undefined;
}

/**
 * The templates a model folder carries: embedtune's own (full) if present, else
 * sentence-transformers' prompts (`query`; `document`, `passage` or `corpus`) as prefixes.
 * @example readTemplates('models/Qwen3-Embedding-0.6B').query // 'Instruct: …\nQuery:{text}'
 */
export function readTemplates(dir: string): Partial<Templates> {
  const path = join(dir, 'config_sentence_transformers.json');
  if (!existsSync(path)) return {};
  const c = readJsonFile(path) as { prompts?: Record<string, unknown>; embedtune_templates?: Record<string, unknown> };
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const own = c.embedtune_templates ?? {};
  const prompts = c.prompts ?? {};
  const prefix = (v: unknown) => (str(v) !== undefined ? asTemplate(str(v)!) : undefined);
  const out: Partial<Templates> = {};
  const query = str(own.query) ?? prefix(prompts.query);
  const passage = str(own.passage) ?? prefix(prompts.document ?? prompts.passage ?? prompts.corpus);
  if (query !== undefined && query !== '{text}') out.query = query;
  if (passage !== undefined && passage !== '{text}') out.passage = passage;
  return out;
}

/** `config_sentence_transformers.json` for templates: prompts where they are prefixes, and the full templates. */
export function sentenceTransformersConfig(t: Templates): Record<string, unknown> {
  const prompts: Record<string, string> = {};
  const q = asPrefix(t.query);
  const p = asPrefix(t.passage);
  if (q) prompts.query = q;
  if (p) prompts.document = p;
  return { prompts, default_prompt_name: null, similarity_fn_name: 'cosine', embedtune_templates: t };
}
