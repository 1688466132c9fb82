/**
 * Hugging Face `tokenizer.json` through @huggingface/tokenizers, truncated as the Rust library
 * does (`truncation=True`): the text's tokens are cut so that, with the special tokens the
 * post-processor adds (BERT's [CLS] … [SEP], XLM-R's <s> … </s>, Qwen3-Embedding's trailing
 * <|endoftext|>), the sequence is max_length long; the closing special tokens are kept.
 * No file system here (the browser build uses it); tokenizer.ts reads a model folder's files.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { tokenizePrefix } from './text-cut.js';

/** What the encoder and trainer need of a tokenizer. */
export interface Tokenizer {
  /** Token ids, special tokens included, truncated to `maxLength`. */
  encode(text: string, maxLength: number): number[];
  readonly modelMaxLength: number;
  /** Special tokens appended after the text (BERT's [SEP], Qwen3-Embedding's <|endoftext|>); 0 if none. */
  readonly closing: number;
  /** The largest id it can produce (vocabulary and added tokens), and the file that says so. */
  readonly maxId: number;
  readonly file: string;
}

/** The largest id in a tokenizer.json: its model's vocabulary (an object, or Unigram's list) and its added tokens. */
function largestId(json: { model?: { vocab?: unknown }; added_tokens?: { id?: unknown }[] }): number {
  const vocab = json.model?.vocab;
  let max = Array.isArray(vocab) ? vocab.length - 1 : -1;
  if (vocab && !Array.isArray(vocab) && typeof vocab === 'object') for (const id of Object.values(vocab)) if (typeof id === 'number' && id > max) max = id;
  for (const t of json.added_tokens ?? []) if (typeof t?.id === 'number' && t.id > max) max = t.id;
  return max;
}

/** The tokenization models of Hugging Face tokenizers (tokenizer.json's `model.type`). */
const TOKENIZER_MODELS = ['WordPiece', 'BPE', 'Unigram', 'WordLevel'];

export class TextTokenizer implements Tokenizer {
  /** How many special tokens the post-processor appends after the text (kept when truncating). */
  readonly closing: number;

  private constructor(
    private readonly tokenizer: HfTokenizer,
    /** The longest input the tokenizer config allows (model_max_length). */
    readonly modelMaxLength: number,
    readonly maxId: number,
    readonly file: string,
  ) {
    const withSpecials: number[] = tokenizer.encode('a').ids;
    const plain: number[] = tokenizer.encode('a', { add_special_tokens: false }).ids;
    const at = withSpecials.findIndex((_, i) => plain.every((id, j) => withSpecials[i + j] === id));
    this.closing = at < 0 ? 0 : withSpecials.length - at - plain.length;
  }

  /**
   * A tokenizer from a parsed tokenizer.json and tokenizer_config.json; `path` names them in errors.
   * @example const tok = TextTokenizer.fromJson(await (await fetch(`${url}/tokenizer.json`)).json(), {}, 'tokenizer.json');
   */
  static fromJson(json: Record<string, unknown>, config: Record<string, unknown>, path: string): TextTokenizer {
    const maxLen = typeof config.model_max_length === 'number' && config.model_max_length < 1e9 ? config.model_max_length : 512;
    const model = (json as { model?: { type?: unknown } }).model;
    if (!TOKENIZER_MODELS.includes(model?.type as string)) {
      throw new Error(`${path}: model.type ${JSON.stringify(model?.type)} is not a tokenizer model of ${TOKENIZER_MODELS.join(', ')}`);
    }
    try {
      return new TextTokenizer(new HfTokenizer(json, config), maxLen, largestId(json as Parameters<typeof largestId>[0]), path);
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

  private pair?: PairTemplate;

  /**
   * A (query, passage) pair through the tokenizer's pair template, with token type ids
   * (XLM-R: `<s> A </s></s> B </s>`, all type 0; BERT: `[CLS] A [SEP] B [SEP]`, B and its [SEP]
   * type 1), cut to `maxLength` by `truncation` (see PairTruncation; default `longest_first`,
   * as sentence-transformers' CrossEncoder).
   * @example tokenizer.encodePair('what is lift?', 'Lift is the force…', 512).ids
   */
  encodePair(a: string, b: string, maxLength: number, truncation: PairTruncation = 'longest_first'): { ids: number[]; typeIds: number[] } {
    const t = (this.pair ??= this.probePair());
    const room = maxLength - t.pre.length - t.mid.length - t.post.length;
    if (room < 2) throw new Error(`max length ${maxLength} leaves no room for a pair's text`);
    const plain = (text: string, limit: number) => tokenizePrefix(text, limit, (x) => this.tokenizer.encode(x, { add_special_tokens: false }).ids);
    let idsA = plain(a, room);
    if (truncation === 'flag') idsA = idsA.slice(0, Math.min(room, Math.floor((maxLength * 3) / 4)));
    let idsB = plain(b, room);
    if (idsA.length + idsB.length > room) {
      if (truncation === 'longest_first') [idsA, idsB] = longestFirst(idsA, idsB, room);
      else if (idsA.length < room) idsB = idsB.slice(0, room - idsA.length);
      else [idsA, idsB] = [idsA.slice(0, Math.ceil(room / 2)), idsB.slice(0, Math.floor(room / 2))];
    }
    const ids = [...t.pre.map((x) => x[0]), ...idsA, ...t.mid.map((x) => x[0]), ...idsB, ...t.post.map((x) => x[0])];
    const typeIds = [...t.pre.map((x) => x[1]), ...idsA.map(() => t.typeA), ...t.mid.map((x) => x[1]), ...idsB.map(() => t.typeB), ...t.post.map((x) => x[1])];
    return { ids, typeIds };
  }

  /** The pair template, read off the tokenizer's encoding of a probe pair. */
  private probePair(): PairTemplate {
    const plain = (x: string) => this.tokenizer.encode(x, { add_special_tokens: false }).ids;
    const [a, b] = [plain('a'), plain('b')];
    const e = this.tokenizer.encode('a', { text_pair: 'b', return_token_type_ids: true });
    const ids: number[] = e.ids;
    const types: number[] = e.token_type_ids ?? ids.map(() => 0);
    const find = (part: number[], from: number) => ids.findIndex((_, i) => i >= from && part.every((id, j) => ids[i + j] === id));
    const at = find(a, 0);
    const bt = at < 0 ? -1 : find(b, at + a.length);
    if (at < 0 || bt < 0) throw new Error('tokenizer.json: its post-processor has no pair template (needed to score query–passage pairs)');
    const span = (from: number, to: number) => ids.slice(from, to).map((id, i): [number, number] => [id, types[from + i]!]);
    return { pre: span(0, at), mid: span(at + a.length, bt), post: span(bt + b.length, ids.length), typeA: types[at]!, typeB: types[bt]! };
  }
}

/**
 * How a pair too long for the model is cut:
 * - `longest_first` (default): the longer side loses tokens until both fit — transformers'
 *   and so sentence-transformers' CrossEncoder (the Rust tokenizers' rule: the shorter side
 *   keeps min(its length, max(room / 2 rounded down, room − the other's length))).
 * - `only_second`: only the passage is cut; a query that alone fills the room keeps the first
 *   half (rounded up) and the passage the rest (transformers refuses such a pair).
 * - `flag`: FlagEmbedding's rerankers: the query is first cut to ¾ of `maxLength`, then
 *   `only_second`.
 */
export type PairTruncation = 'longest_first' | 'only_second' | 'flag';
export const PAIR_TRUNCATIONS: readonly PairTruncation[] = ['longest_first', 'only_second', 'flag'];

/** The Rust tokenizers' LongestFirst truncation of a pair to `room` tokens (both too long together). */
function longestFirst(a: number[], b: number[], room: number): [number[], number[]] {
  const swap = a.length > b.length;
  let [n1, n2] = swap ? [b.length, a.length] : [a.length, b.length];
  n2 = n1 > room ? n1 : Math.max(n1, room - n1);
  if (n1 + n2 > room) {
    n1 = Math.floor(room / 2);
    n2 = n1 + (room % 2);
  }
  if (swap) [n1, n2] = [n2, n1];
  return [a.slice(0, n1), b.slice(0, n2)];
}

/** Special tokens (id, type id) before A, between A and B, after B; the type ids of A and B. */
interface PairTemplate {
  pre: [number, number][];
  mid: [number, number][];
  post: [number, number][];
  typeA: number;
  typeB: number;
}

