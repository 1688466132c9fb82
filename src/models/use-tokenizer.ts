/**
 * The Universal Sentence Encoder Lite tokenizer: SentencePiece pieces with scores from
 * `vocab.json`, segmented by a Viterbi pass over the whole NFKC-normalised text with spaces
 * replaced by "▁". It is reimplemented here rather than expressed as a Hugging Face Unigram
 * `tokenizer.json` because its exact ids depend on details a Unigram model does not share:
 * a character with no piece becomes id 0 with score 0, a lattice position whose best score is
 * exactly 0 counts as unset, ties go to the later candidate, and runs of unknown ids are
 * merged, and the backward pass steps by UTF-16 length. Parity with the original is asserted
 * in the tests on the bundled data.
 */

import { tokenizePrefix } from './text-cut.js';

const SEPARATOR = '\u2581';
/** Ids below this (unknown, <s>, </s>, extra tokens) are never produced by matching. */
const RESERVED = 6;

interface TrieNode {
  children: Map<string, TrieNode>;
  /** Vocabulary id when a piece ends here. */
  id?: number;
}

export class UseTokenizer {
  private readonly root: TrieNode = { children: new Map() };

  constructor(
    /** `[piece, score]` by id. */
    private readonly vocabulary: [string, number][],
    readonly modelMaxLength = 128,
    /** Where the vocabulary came from (messages). */
    readonly file = 'vocab.json',
  ) {
    for (let id = RESERVED; id < vocabulary.length; id++) {
      let node = this.root;
      for (const ch of vocabulary[id]![0]) {
        let next = node.children.get(ch);
        if (!next) node.children.set(ch, (next = { children: new Map() }));
        node = next;
      }
      node.id = id;
    }
  }

  /** USE-Lite adds no special tokens. */
  readonly closing = 0;

  /** Ids are positions in the vocabulary. */
  get maxId(): number {
    return this.vocabulary.length - 1;
  }

  /** Ids of the pieces, truncated to the first `maxLength` (the model keeps positions < 128). */
  encode(text: string, maxLength = this.modelMaxLength): number[] {
    return tokenizePrefix(text, maxLength, (t) => this.pieces(t)).slice(0, maxLength);
  }

  /** Ids of every piece of `text` (one Viterbi pass over the whole text). */
  private pieces(text: string): number[] {
    const normalized = text.normalize('NFKC');
    const symbols = normalized.length ? [...(SEPARATOR + normalized.replaceAll(' ', SEPARATOR))] : [];
    const n = symbols.length;
    // candidates[end] holds (start, id, score) of every piece ending at `end`, by ascending start.
    const candidates: { start: number; id: number; score: number }[][] = Array.from({ length: n + 1 }, () => []);
    for (let i = 0; i < n; i++) {
      let node = this.root.children.get(symbols[i]!);
      let found = false;
      for (let j = i; j < n && node; j++) {
        if (node.id !== undefined) {
          candidates[j + 1]!.push({ start: i, id: node.id, score: this.vocabulary[node.id]![1] });
          found = true;
        }
        node = node.children.get(symbols[j + 1]!);
      }
      if (!found) candidates[i + 1]!.push({ start: i, id: 0, score: 0 }); // unknown character
    }
    const best = new Float64Array(n + 1);
    const word = new Int32Array(n + 1);
    for (let end = 0; end <= n; end++) {
      for (const c of candidates[end]!) {
        const score = c.score + best[c.start]!;
        if (best[end] === 0 || score >= best[end]!) {
          best[end] = score;
          word[end] = c.id;
        }
      }
    }
    const ids: number[] = [];
    // The original steps back by the piece's UTF-16 length (not its code points); kept for parity.
    for (let at = n; at > 0; at -= this.vocabulary[word[at]!]![0].length) ids.push(word[at]!);
    const merged: number[] = [];
    let previousUnknown = false;
    for (const id of ids) {
      if (!(previousUnknown && id === 0)) merged.push(id);
      previousUnknown = id === 0;
    }
    return merged.reverse();
  }
}
