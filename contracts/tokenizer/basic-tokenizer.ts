// BasicTokenizer of tokenization_bert.py (do_lower_case=True,
// tokenize_chinese_chars=True, strip_accents=None), applied to one chunk of
// text that contains no special token, together with the per-character
// lowercase pre-pass of PreTrainedTokenizer.tokenize.
//
// The Python pipeline for a chunk is:
//   1. per-character str.lower()           (tokenize's `(.+?)` regex pre-pass)
//   2. _clean_text: drop NUL, U+FFFD and C* except \t\n\r; whitespace → ' '
//   3. _tokenize_chinese_chars: ' ' + ideograph + ' '
//   4. NFC, then str.split() on Python whitespace
//   5. per word: str.lower(), NFD, drop Mn, split around each punctuation char
//   6. str.split() again (drops the empty pieces)
// We do 2-3 on the original characters in one scan (classes from the frozen
// Unicode 14 table, see unicode.ts), then 1 and 4-5 per word. Reordering 1
// after 2-3 is exact: lowercasing never turns a character into or out of a
// control, whitespace or ideograph, and unassigned code points (dropped in 2)
// have no case mapping in Python's Unicode 14 data.
//
// never_split: BertTokenizer passes all special tokens as never_split, which
// keeps a whitespace token equal to one of them from being lowercased and
// punctuation-split. It can never fire in this pipeline: the trie has already
// cut out every literal special token, and a token that only forms after
// _clean_text (e.g. '[CL\u200bS]' → '[CLS]') was lowercased by the pre-pass
// first ('[cls]'), so it no longer matches. Hence no never_split check here.
//
// ASCII words take a shortcut: for them NFC/NFD are identities, no character
// is Mn, and lowercasing keeps punctuation as punctuation, so they are
// lowercased and split on the ASCII punctuation ranges directly.
import { charClass, CJK, DROP, lowerPerChar, MN, PUNCT, SPACE } from './unicode.js';

/** Receives each output token; returning false stops the tokenizer early. */
export type TokenSink = (token: string) => boolean;

// Classes of the 128 ASCII code points, from the same table.
const ASCII_CLASS = Uint8Array.from({ length: 128 }, (_, cp) => charClass(cp));

/**
 * Runs BasicTokenizer over `text`, calling `emit` for each token in order.
 * Returns false if `emit` asked to stop.
 */
export function basicTokenize(text: string, emit: TokenSink): boolean {
  const n = text.length;
  let word = ''; // the current word's characters before `segStart` (a DROP interrupted it)
  let segStart = 0; // start of the current run of kept characters
  let ascii = true; // the current word has only ASCII characters so far
  for (let i = 0; i < n; i++) {
    let cp = text.charCodeAt(i);
    let cls: number;
    let width = 1;
    if (cp < 0x80) {
      cls = ASCII_CLASS[cp] ?? 0;
    } else {
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
        const lo = text.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          width = 2;
        }
      }
      cls = charClass(cp);
      if (cls !== SPACE && cls !== DROP && cls !== CJK) ascii = false;
    }
    if (cls === SPACE || cls === DROP || cls === CJK) {
      if (cls === DROP) {
        // Removed without ending the word: 'a\u200bb' is the word 'ab'.
        word += text.slice(segStart, i);
      } else {
        if (!flush(word + text.slice(segStart, i), ascii, emit)) return false;
        word = '';
        ascii = true;
        if (cls === CJK && !flush(text.slice(i, i + width), false, emit)) return false;
      }
      segStart = i + width;
    }
    i += width - 1;
  }
  return flush(word + text.slice(segStart), ascii, emit);
}

/** Convenience form of {@link basicTokenize} returning all tokens. */
export function basicTokenizeToArray(text: string): string[] {
  const out: string[] = [];
  basicTokenize(text, (t) => {
    out.push(t);
    return true;
  });
  return out;
}

/** Step 5 for one whitespace-delimited word. */
function flush(word: string, ascii: boolean, emit: TokenSink): boolean {
  if (word === '') return true;
  if (ascii) return splitAsciiOnPunct(word.toLowerCase(), emit);
  // Python: lower() per char (pre-pass), NFC (BasicTokenizer.tokenize, since
  // transformers 4.31), lower() again on the word, then NFD for
  // _run_strip_accents. The NFC and second lower() change nothing after NFD
  // for Unicode 14 data, but cost little and keep the steps literal.
  const normalized = lowerPerChar(word).normalize('NFC').toLowerCase().normalize('NFD');
  let piece = '';
  for (const ch of normalized) {
    const cls = charClass(ch.codePointAt(0) ?? 0);
    if (cls === MN) continue; // _run_strip_accents: drop category Mn only (not Mc/Me)
    if (cls === PUNCT) {
      if (piece !== '' && !emit(piece)) return false;
      piece = '';
      if (!emit(ch)) return false;
    } else {
      piece += ch;
    }
  }
  return piece === '' || emit(piece);
}

function splitAsciiOnPunct(word: string, emit: TokenSink): boolean {
  let start = 0;
  for (let i = 0; i < word.length; i++) {
    if (ASCII_CLASS[word.charCodeAt(i)] === PUNCT) {
      if (start < i && !emit(word.slice(start, i))) return false;
      if (!emit(word[i] ?? '')) return false;
      start = i + 1;
    }
  }
  return start >= word.length || emit(word.slice(start));
}
