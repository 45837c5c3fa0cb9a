// Character classification and case/normalization helpers with the exact
// semantics of the slow Python BertTokenizer (CPython 3.11, Unicode 14.0.0).
//
// Categories come from a frozen table generated from Python's `unicodedata`
// (unicode-table.ts), not from the JS engine's `\p{...}`: engines ship newer
// Unicode versions (Node 20.20: 17.0) in which thousands of code points that
// Python 3.11 sees as unassigned (category Cn → dropped by `_clean_text`) are
// letters or emoji, and a few characters changed category (U+1171E is Mn in
// 14.0, Mc later). The table makes Node and workerd agree with Python and with
// each other whatever their ICU.
//
// Case mapping and NFC/NFD do come from the engine: for every code point
// assigned in Unicode 14.0 they are identical to Python 3.11's (checked by
// test/node/tokenizer-unicode.test.ts), and code points assigned later never
// reach them because the table drops them first.
import { CHAR_CLASS_RUNS } from './unicode-table.js';

export const OTHER = 0;
/** NUL, U+FFFD, categories C* (incl. unassigned Cn, lone surrogates) except \t \n \r: removed. */
export const DROP = 1;
/** Whitespace to BasicTokenizer (' ', \t, \n, \r, Zs) or to Python's str.split() (U+2028/9): ends a word. */
export const SPACE = 2;
/** `_is_punctuation`: ASCII 33-47, 58-64, 91-96, 123-126 or category P*. A token of its own. */
export const PUNCT = 3;
/** Category Mn: removed by `_run_strip_accents` after NFD. */
export const MN = 4;
/** `_is_chinese_char`: padded with spaces, so a word of its own. */
export const CJK = 5;

const BMP = new Uint8Array(0x10000);
let astralStarts: Uint32Array;
let astralClasses: Uint8Array;

(function decode() {
  const runs = CHAR_CLASS_RUNS.split(',');
  const starts: number[] = [];
  const classes: number[] = [];
  let start = 0;
  for (const run of runs) {
    start += parseInt(run.slice(1), 36);
    starts.push(start);
    classes.push(run.charCodeAt(0) - 48);
  }
  let firstAstral = starts.length;
  for (let i = 0; i < starts.length; i++) {
    const from = starts[i] ?? 0;
    const to = Math.min(starts[i + 1] ?? 0x110000, 0x10000);
    if (from < 0x10000) BMP.fill(classes[i] ?? OTHER, from, to);
    if (firstAstral === starts.length && (starts[i + 1] ?? 0x110000) > 0x10000) firstAstral = i;
  }
  // Astral runs for binary search; the first one may start inside the BMP,
  // which is harmless since only code points >= 0x10000 are looked up there.
  astralStarts = Uint32Array.from(starts.slice(firstAstral));
  astralClasses = Uint8Array.from(classes.slice(firstAstral));
})();

/** The tokenizer class of a code point (0..0x10FFFF; lone surrogates are DROP). */
export function charClass(cp: number): number {
  if (cp < 0x10000) return BMP[cp] ?? OTHER;
  let lo = 0;
  let hi = astralStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((astralStarts[mid] ?? 0) <= cp) lo = mid;
    else hi = mid - 1;
  }
  return astralClasses[lo] ?? OTHER;
}

/**
 * Python's `str.lower()` applied one character at a time.
 *
 * Why per character: PreTrainedTokenizer.tokenize lowercases the text with
 * `re.sub(r"(<special tokens>)|(.+?)", lambda m: m[1] or m[2].lower(), text)`,
 * and the lazy `(.+?)` matches a single character, so the Final_Sigma rule of
 * full-string lowercasing never applies: 'ΟΔΟΣ' → 'οδοσ' in Python, while JS
 * 'ΟΔΟΣ'.toLowerCase() gives 'οδος'. Final_Sigma is the only context-dependent
 * mapping of the locale-independent toLowerCase, so mapping Σ first suffices;
 * everything else (including 'İ' → 'i̇', two code points) is per character.
 */
export function lowerPerChar(s: string): string {
  return (s.includes('\u03a3') ? s.replaceAll('\u03a3', '\u03c3') : s).toLowerCase();
}
