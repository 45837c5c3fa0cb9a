// WordpieceTokenizer of tokenization_bert.py: greedy longest-match-first over
// one BasicTokenizer token, continuation pieces prefixed with '##'.
//
// Python semantics kept:
// - Lengths are in code points (`list(token)`), not UTF-16 units: an emoji
//   outside the BMP is one character, both for the 100-character limit and
//   for the substrings tried.
// - A token longer than max_input_chars_per_word (100) is one [UNK].
// - If any position finds no vocab entry, the WHOLE token becomes a single
//   [UNK] (pieces already matched are discarded).
// Speed-up that cannot change the result: substrings longer than the longest
// vocab entry (per prefix kind) are not looked up, since they cannot match.
import type { Vocab } from './vocab.js';

export const CONTINUATION_PREFIX = '##';
export const MAX_INPUT_CHARS_PER_WORD = 100;

export class WordPiece {
  readonly unkId: number;
  private readonly maxHead: number;
  private readonly maxTail: number;

  constructor(
    private readonly vocab: Vocab,
    readonly unkToken = '[UNK]',
    private readonly maxInputChars = MAX_INPUT_CHARS_PER_WORD,
  ) {
    const unk = vocab.get(unkToken);
    if (unk === undefined) throw new Error(`vocab has no ${unkToken}`);
    this.unkId = unk;
    let maxHead = 0;
    let maxTail = 0;
    for (const token of vocab.keys()) {
      const n = codePointLength(token);
      if (token.startsWith(CONTINUATION_PREFIX)) maxTail = Math.max(maxTail, n - CONTINUATION_PREFIX.length);
      // A '##x' entry is also a candidate for a word start (Python looks up
      // the bare substring, which may itself begin with '##').
      maxHead = Math.max(maxHead, n);
    }
    this.maxHead = maxHead;
    this.maxTail = maxTail;
  }

  /** Appends the ids of one BasicTokenizer token to `out`. */
  encodeWord(word: string, out: number[]): void {
    const n = word.length;
    // Code point boundaries: for pure-BMP words (the common case) they are
    // the UTF-16 indices themselves, so `bounds` stays undefined.
    let bounds: number[] | undefined;
    for (let i = 0; i < n; i++) {
      const c = word.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff) {
        bounds = codePointBounds(word);
        break;
      }
    }
    const len = bounds ? bounds.length - 1 : n;
    if (len > this.maxInputChars) {
      out.push(this.unkId);
      return;
    }
    const at = (k: number): number => (bounds ? (bounds[k] ?? n) : k);
    const mark = out.length;
    let start = 0;
    while (start < len) {
      let end = Math.min(len, start + (start === 0 ? this.maxHead : this.maxTail));
      let id: number | undefined;
      while (start < end) {
        const sub = word.slice(at(start), at(end));
        id = this.vocab.get(start > 0 ? CONTINUATION_PREFIX + sub : sub);
        if (id !== undefined) break;
        end--;
      }
      if (id === undefined) {
        out.length = mark;
        out.push(this.unkId);
        return;
      }
      out.push(id);
      start = end;
    }
  }
}

function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** UTF-16 index of every code point start, plus the string length at the end. */
function codePointBounds(s: string): number[] {
  const bounds: number[] = [];
  for (let i = 0; i < s.length; i++) {
    bounds.push(i);
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  bounds.push(s.length);
  return bounds;
}
