/**
 * A 50 MB text should not be tokenized whole to keep its first 512 tokens (49 s, 3.2 GB).
 * `tokenizePrefix` tokenizes a prefix of the text long enough to give the same first tokens.
 */

/** Tokens past the kept ones that a prefix must yield before it is trusted. */
const CUT_MARGIN = 32;

/**
 * The ids of `text` — or of a prefix of it, when the prefix yields `CUT_MARGIN` more than
 * `maxLength` tokens: a cut changes at most the tokens of the word (or, for a Unigram model
 * over unspaced text, the few pieces) it falls in, all past the kept ones. The prefix ends
 * after a space where one is near; it grows 4× until it yields enough tokens, so a text
 * whose tokens are long (`=====…`) costs at most 4/3 of tokenizing it whole.
 * @example tokenizePrefix('a b c', 2, (t) => t.split(' ').map((w) => w.length)); // [1, 1, 1]
 */
export function tokenizePrefix(text: string, maxLength: number, tokenize: (text: string) => number[]): number[] {
  for (let cut = Math.max(1024, maxLength * 16); cut < text.length; cut *= 4) {
    const ids = tokenize(prefix(text, cut));
    if (ids.length >= maxLength + CUT_MARGIN) return ids;
  }
  return tokenize(text);
}

/** The first ~`cut` characters of `text`, ending after whitespace in its last quarter if any, never inside a surrogate pair. */
export function prefix(text: string, cut: number): string {
  for (let i = cut; i > cut * 0.75; i--) if (/\s/.test(text[i - 1]!)) return text.slice(0, i);
  const code = text.charCodeAt(cut - 1);
  return text.slice(0, code >= 0xd800 && code < 0xdc00 ? cut - 1 : cut);
}
