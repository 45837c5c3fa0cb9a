// The shared tokenizer inside workerd (the edge's runtime): the vocab arrives as
// a wrangler Text module, the expected ids as JSON fixtures computed from the
// independent references (Rust tokenizers + pinned slow-Python divergences).
import { describe, expect, it } from 'vitest';
import { BertTokenizer, UNICODE_VERSION, lowerPerChar } from '../../contracts/tokenizer/index.js';
import vocabText from '../../contracts/tokenizer/vocab.txt';
import expected from '../fixtures/tokenizer/expected.json' with { type: 'json' };
import divergences from '../fixtures/tokenizer/divergences.json' with { type: 'json' };
import { KNOWN_CHANGES, compareTableWithEngine } from '../fixtures/tokenizer/engine-class.js';

const tokenizer = BertTokenizer.fromVocabText(vocabText);
// Inputs with lone surrogates are stored as UTF-16 code units: Vite 8's JSON
// import (rolldown, serde_json) rejects lone-surrogate \u escapes.
const cases = expected.cases.map((c) => ({
  input: 'input' in c && typeof c.input === 'string' ? c.input : String.fromCharCode(...('input_utf16' in c ? (c.input_utf16 ?? []) : [])),
  input_ids: c.input_ids,
  length: c.length,
}));
const maskOf = (length: number, width: number) => Array.from({ length: width }, (_, i) => (i < length ? 1 : 0));

describe('tokenizer in workerd', () => {
  it('loads the bundled vocab with [DEC] and [ENC] appended', () => {
    expect(typeof vocabText).toBe('string');
    expect(tokenizer.vocabSize).toBe(30524);
    expect(tokenizer.tokenToId('[DEC]')).toBe(30522);
    expect(tokenizer.tokenToId('[ENC]')).toBe(30523);
  });

  it(`matches all ${cases.length} expected.json cases (stress set + 10k sample)`, () => {
    expect(expected.max_length).toBe(35);
    expect(cases.some((c) => c.input.includes('\ud800'))).toBe(true);
    const bad = cases.filter((c) => {
      const enc = tokenizer.encode(c.input);
      return enc.input_ids.join() !== c.input_ids.join() || enc.attention_mask.join() !== maskOf(c.length, 35).join();
    });
    expect(bad.map((c) => c.input)).toEqual([]);
  });

  it.each(divergences.cases.map((d) => [d.input, d] as const))('pinned slow-Python divergence %j', (_input, d) => {
    expect(tokenizer.tokenize(d.input)).toEqual(d.tokens);
    expect(tokenizer.encode(d.input).input_ids).toEqual(d.ids);
  });

  it('lowercases per character and normalizes with the runtime ICU like Python does', () => {
    expect(lowerPerChar('ΟΔΟΣ İ')).toBe('οδοσ i\u0307');
    expect('e\u0301'.normalize('NFC')).toBe('\u00e9');
    expect('\u1e9b\u0323'.normalize('NFD')).toBe('\u017f\u0323\u0307');
  });

  it("uses the frozen Unicode 14 table whatever workerd's own Unicode version", () => {
    const { newer, other } = compareTableWithEngine();
    console.log(`workerd: table ${UNICODE_VERSION}, ${newer} code points newer in the runtime's Unicode, other differences: ${other.join('; ') || 'none'}`);
    expect(other.filter((d) => !KNOWN_CHANGES.includes(d))).toEqual([]);
  });
});
