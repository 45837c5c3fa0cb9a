// Splitting out special tokens before any other processing, as the slow
// PreTrainedTokenizer.tokenize does with its `tokens_trie`.
//
// Semantics reproduced:
// - Every special token (bert-base-uncased's five plus ImageReward's [DEC] and
//   [ENC]) is cut out wherever it literally appears, case-sensitively, even
//   inside a word: 'cat[SEP]dog' → 'cat', [SEP], 'dog'. '[sep]' is plain text
//   (it becomes '[', 'sep', ']').
// - Matches are leftmost, then longest, scanning left to right without
//   overlap (the trie's behaviour; all seven tokens are '[' + letters + ']',
//   so no two matches can overlap anyway).
// - The lowercase pre-pass of `tokenize` runs before the trie, but it can
//   neither create nor destroy a match: it lowercases exactly the characters
//   outside special-token matches, and lowercasing never yields the uppercase
//   ASCII letters the tokens are made of.
// - Whitespace around a special token: transformers < 4.34 stripped it
//   (plain-string special tokens defaulted to lstrip/rstrip), >= 4.34 does
//   not. Either way the stripped characters are whitespace to BasicTokenizer,
//   so the ids are the same; we do not strip.

/** bert-base-uncased's special tokens (with their vocab ids 0, 100-103), then ImageReward's additions. */
export const SPECIAL_TOKENS: readonly string[] = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '[DEC]', '[ENC]'];

/** ImageReward: `add_special_tokens({'bos_token': '[DEC]'})` then `{'additional_special_tokens': ['[ENC]']}`. */
export const ADDED_TOKENS: readonly string[] = ['[DEC]', '[ENC]'];

/**
 * Calls `onText` for each maximal run of text between special tokens (never
 * empty) and `onSpecial` for each special token, in order.
 */
export function splitOnSpecialTokens(
  text: string,
  tokens: readonly string[],
  onText: (chunk: string) => void,
  onSpecial: (token: string) => void,
): void {
  let last = 0;
  let i = 0;
  for (;;) {
    // All tokens of interest start with '['; indexOf is the fast path for
    // prompts without brackets. Generic tokens are handled by the fallback.
    const next = firstCandidate(text, tokens, i);
    if (next < 0) break;
    let hit: string | undefined;
    for (const t of tokens) {
      if (t !== '' && (hit === undefined || t.length > hit.length) && text.startsWith(t, next)) hit = t;
    }
    if (hit === undefined) {
      i = next + 1;
      continue;
    }
    if (last < next) onText(text.slice(last, next));
    onSpecial(hit);
    i = last = next + hit.length;
  }
  if (last < text.length) onText(text.slice(last));
}

function firstCandidate(text: string, tokens: readonly string[], from: number): number {
  let best = -1;
  let seen = '';
  for (const t of tokens) {
    const c = t[0] ?? '';
    if (c === '' || seen.includes(c)) continue;
    seen += c;
    const at = text.indexOf(c, from);
    if (at >= 0 && (best < 0 || at < best)) best = at;
  }
  return best;
}
