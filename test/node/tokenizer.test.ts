// Unit tests of the tokenizer's pieces. Expected values are either taken from
// the Rust tokenizers library at test time or written out from the slow Python
// semantics (each checked against test/fixtures/tokenizer/slow_reference.py),
// never produced by our own implementation.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer, WordPiece as RustWordPiece, whitespaceSplitPreTokenizer } from '@anush008/tokenizers';
import { describe, expect, it } from 'vitest';
import {
  ADDED_TOKENS,
  BertTokenizer,
  MAX_LENGTH,
  SPECIAL_TOKENS,
  WordPiece,
  addTokens,
  basicTokenizeToArray,
  lowerPerChar,
  parseVocab,
  splitOnSpecialTokens,
} from '../../contracts/tokenizer/index.js';
import { defaultVocabPath, loadTokenizer } from '../../gpu-service/tokenizer.js';
import { rustEncodeAll, rustTokenizer } from '../fixtures/tokenizer/rust-reference.js';

const VOCAB_PATH = join(import.meta.dirname, '..', '..', 'contracts', 'tokenizer', 'vocab.txt');
const vocabText = readFileSync(VOCAB_PATH, 'utf8');
const tokenizer = BertTokenizer.fromVocabText(vocabText);

describe('vocab', () => {
  it('gives each line its 0-based line number and appends [DEC]=30522, [ENC]=30523', () => {
    expect(tokenizer.vocabSize).toBe(30524);
    expect(tokenizer.tokenToId('[PAD]')).toBe(0);
    expect(tokenizer.tokenToId('[UNK]')).toBe(100);
    expect(tokenizer.tokenToId('[CLS]')).toBe(101);
    expect(tokenizer.tokenToId('[SEP]')).toBe(102);
    expect(tokenizer.tokenToId('[MASK]')).toBe(103);
    expect(tokenizer.tokenToId('[DEC]')).toBe(30522);
    expect(tokenizer.tokenToId('[ENC]')).toBe(30523);
    expect(tokenizer.tokenToId('the')).toBe(1996);
  });

  it('reads lines like Python text mode (universal newlines), later duplicates win', () => {
    const v = parseVocab('a\r\nb\rc\nb\n');
    expect([...v]).toEqual([
      ['a', 0],
      ['b', 3],
      ['c', 2],
    ]);
    expect([...parseVocab('x\ny')]).toEqual([
      ['x', 0],
      ['y', 1],
    ]);
  });

  it('adds tokens with the next free id, keeping the id of ones already present', () => {
    const v = parseVocab('[PAD]\n[DEC]\nz\n');
    addTokens(v, ADDED_TOKENS);
    expect(v.get('[DEC]')).toBe(1);
    expect(v.get('[ENC]')).toBe(3);
  });
});

describe('special tokens', () => {
  const split = (text: string) => {
    const out: string[] = [];
    splitOnSpecialTokens(
      text,
      SPECIAL_TOKENS,
      (t) => out.push(`t:${t}`),
      (s) => out.push(`s:${s}`),
    );
    return out;
  };

  it.each([
    ['', []],
    ['plain text', ['t:plain text']],
    ['[CLS]', ['s:[CLS]']],
    ['cat[SEP]dog', ['t:cat', 's:[SEP]', 't:dog']],
    ['[SEP][SEP]', ['s:[SEP]', 's:[SEP]']],
    ['[[CLS]]', ['t:[', 's:[CLS]', 't:]']],
    ['[CL[CLS]', ['t:[CL', 's:[CLS]']],
    [' [DEC] x [ENC]', ['t: ', 's:[DEC]', 't: x ', 's:[ENC]']],
    ['[cls] [Sep] [ CLS ] [CLS', ['t:[cls] [Sep] [ CLS ] [CLS']],
    ['a[PAD]b[UNK]c[MASK]', ['t:a', 's:[PAD]', 't:b', 's:[UNK]', 't:c', 's:[MASK]']],
  ])('splits %j case-sensitively, even inside words', (text, expected) => {
    expect(split(text)).toEqual(expected);
  });

  it('prefers the longest token at the leftmost position', () => {
    const out: string[] = [];
    splitOnSpecialTokens('x<ab>y<a>', ['<a>', '<ab>', '<a'], (t) => out.push(t), (s) => out.push(`<${s}>`));
    expect(out).toEqual(['x', '<<ab>>', 'y', '<<a>>']);
  });

  it('keeps special tokens whole and maps them to their ids', () => {
    expect(tokenizer.tokenize('A Cat on [SEP] Mars')).toEqual(['a', 'cat', 'on', '[SEP]', 'mars']);
    expect(tokenizer.tokenize('x[DEC]y [ENC] [cls]')).toEqual(['x', '[DEC]', 'y', '[ENC]', '[', 'cl', '##s', ']']);
    expect(tokenizer.encode('[PAD][DEC][ENC]').input_ids.slice(0, 6)).toEqual([101, 0, 30522, 30523, 102, 0]);
  });
});

describe('basic tokenizer', () => {
  // Expected tokens: slow_reference.py's BasicTokenizer after the lowercase pre-pass.
  it.each([
    ['Hello, World!', ['hello', ',', 'world', '!']],
    ['H\u00e9llo WORLD', ['hello', 'world']],
    ['a\u200bb', ['ab']], // zero-width space is Cf: dropped, does not split
    ['a\u0000b\ufffdc', ['abc']], // NUL and U+FFFD dropped
    ['x\ty\nz\r\u3000w\u2028v', ['x', 'y', 'z', 'w', 'v']], // \u2028 is not Zs but str.split() splits on it
    ['\u4e2d\u6587a\u5b57', ['中', '文', 'a', '字']], // ideographs padded
    ['\u039f\u0394\u039f\u03a3 \u0391\u03a3', ['οδοσ', 'ασ']], // per-character lower(): no final sigma
    ['\u0130stanbul', ['istanbul']], // 'İ'.lower() = 'i̇', the U+0307 is Mn and stripped
    ['\ufb01re', ['ﬁre']], // NFD is canonical only: the ligature stays
    ['\uff26\uff35\uff2c\uff2c\uff01', ['ｆｕｌｌ', '！']], // fullwidth lowercased, U+FF01 is Po
    ["don't", ['don', "'", 't']],
    ['e\u0301\u0301', ['e']],
    ['\u0301', []],
    ['1\ufe0f\u20e3', ['1\u20e3']], // U+FE0F is Mn (stripped), U+20E3 is Me (kept)
    ['\u1fef', ['`']], // GREEK VARIA (Sk) decomposes to '`', which is ASCII punctuation
    ['\u216b', ['ⅻ']],
    ['a\u0300\u0301b', ['ab']],
    ['x\u037ey', ['x', ';', 'y']],
    ['\u01c5', ['ǆ']],
    ['\u1e9e', ['ß']],
    ['  ', []],
    ['', []],
  ])('%j → %j', (text, expected) => {
    expect(basicTokenizeToArray(text)).toEqual(expected);
  });

  it('lowercases one character at a time, as the `(.+?)` pre-pass does', () => {
    expect(lowerPerChar('ΟΔΟΣ')).toBe('οδοσ');
    expect('ΟΔΟΣ'.toLowerCase()).toBe('οδος'); // what a plain JS toLowerCase would do
    expect(lowerPerChar('İ')).toBe('i\u0307');
    expect(lowerPerChar('ABC ς')).toBe('abc ς');
  });
});

describe('wordpiece', () => {
  const vocab = parseVocab(['[UNK]', 'un', '##aff', '##able', 'unaff', '##a', 'a', '😀', '##😀', '##ble'].join('\n'));
  const wp = new WordPiece(vocab);
  const rust = new Tokenizer(RustWordPiece.init(Object.fromEntries(vocab), { unkToken: '[UNK]', maxInputCharsPerWord: 100 }));
  rust.setPreTokenizer(whitespaceSplitPreTokenizer());
  const ours = (word: string) => {
    const ids: number[] = [];
    wp.encodeWord(word, ids);
    return ids;
  };
  const reference = async (word: string) => (await rust.encode(word, null, { addSpecialTokens: false })).getIds();

  it.each([
    ['unaffable'], // greedy longest first: unaff ##able, not un ##aff ##able
    ['unable'], // un ##able
    ['unaffablex'], // x never matches → the whole word is one [UNK]
    ['aaaa'],
    ['a'.repeat(100)], // 100 characters: still wordpieced
    ['a'.repeat(101)], // over 100 → [UNK]
    ['😀'.repeat(100)], // 100 code points but 200 UTF-16 units: still wordpieced
    ['😀'.repeat(101)],
    ['a😀'],
    ['😀ble'],
  ])('%s matches the Rust WordPiece model', async (word) => {
    expect(ours(word)).toEqual(await reference(word));
  });

  it('counts code points for the 100-character limit', () => {
    expect(ours('😀'.repeat(100))).toEqual([7, ...Array<number>(99).fill(8)]);
    expect(ours('😀'.repeat(101))).toEqual([0]);
    expect(ours('unaffablex')).toEqual([0]);
  });
});

describe('encode: truncation and padding', () => {
  const rust = rustTokenizer(vocabText);
  const long = 'a beautiful painting of a serene landscape with mountains, rivers, and forests, highly detailed, trending on artstation, by greg rutkowski and alphonse mucha, 8k, octane render';

  it('is [CLS] + ids + [SEP], zero-padded to 35 with a matching attention mask', async () => {
    const enc = tokenizer.encode('a cat');
    expect(enc.input_ids).toHaveLength(MAX_LENGTH);
    expect(enc.attention_mask).toHaveLength(MAX_LENGTH);
    expect(enc.input_ids.slice(0, 5)).toEqual([101, 1037, 4937, 102, 0]);
    expect(enc.attention_mask.slice(0, 5)).toEqual([1, 1, 1, 1, 0]);
    const [ref] = await rustEncodeAll(rust, ['a cat']);
    expect(enc).toEqual(ref);
  });

  it('truncates to 33 tokens before [SEP], with no padding', async () => {
    const enc = tokenizer.encode(long);
    expect(enc.input_ids[0]).toBe(101);
    expect(enc.input_ids[34]).toBe(102);
    expect(enc.attention_mask.every((m) => m === 1)).toBe(true);
    const [ref] = await rustEncodeAll(rust, [long]);
    expect(enc).toEqual(ref);
  });

  it('gives a literal [PAD] id 0 with attention 1, and an empty prompt [CLS][SEP]', async () => {
    const refs = await rustEncodeAll(rust, ['x [PAD] y', '']);
    expect(tokenizer.encode('x [PAD] y')).toEqual(refs[0]);
    expect(tokenizer.encode('')).toEqual(refs[1]);
    expect(tokenizer.encode('x [PAD] y').attention_mask.slice(0, 6)).toEqual([1, 1, 1, 1, 1, 0]);
  });

  it.each([2, 3, 8, 64, 512])('honours maxLength %i', async (maxLength) => {
    const [ref] = await rustEncodeAll(rustTokenizer(vocabText, maxLength), [long]);
    expect(tokenizer.encode(long, maxLength)).toEqual(ref);
  });

  it('rejects a maxLength below 2', () => {
    expect(() => tokenizer.encode('x', 1)).toThrow(RangeError);
    expect(() => tokenizer.encode('x', 3.5)).toThrow(RangeError);
  });

  it('tokenIds with a limit keeps the exact prefix', () => {
    const all = tokenizer.tokenIds(long);
    const some = tokenizer.tokenIds(long, 5);
    expect(some.length).toBeGreaterThanOrEqual(5);
    expect(some.length).toBeLessThan(all.length);
    expect(some).toEqual(all.slice(0, some.length));
    expect(tokenizer.tokenIds(long, 0)).toEqual([]);
  });
});

describe('gpu-service loader', () => {
  it('loads the bundled vocab from the package root, once', async () => {
    expect(defaultVocabPath()).toBe(VOCAB_PATH);
    const a = await loadTokenizer();
    expect(await loadTokenizer()).toBe(a);
    expect(a.encode('a cat').input_ids.slice(0, 4)).toEqual([101, 1037, 4937, 102]);
  });

  it('loads an explicit vocab path and rejects a missing one', async () => {
    const t = await loadTokenizer(VOCAB_PATH);
    expect(t.tokenToId('[ENC]')).toBe(30523);
    await expect(loadTokenizer(join(import.meta.dirname, 'no-such-vocab.txt'))).rejects.toThrow(/ENOENT/);
  });
});
