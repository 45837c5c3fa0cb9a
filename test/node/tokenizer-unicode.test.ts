// The frozen Unicode 14 character table (contracts/tokenizer/unicode-table.ts)
// and the engine's case mapping / normalization, against Python 3.11 and the
// JS engine. Documents where the JS engine's newer Unicode differs.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BertTokenizer, CJK, DROP, MN, OTHER, PUNCT, SPACE, UNICODE_VERSION, charClass, lowerPerChar } from '../../contracts/tokenizer/index.js';
import { KNOWN_CHANGES, compareTableWithEngine } from '../fixtures/tokenizer/engine-class.js';
import { CHAR_CLASS_RUNS } from '../../contracts/tokenizer/unicode-table.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PYTHON = '/usr/bin/python3';

function pythonAvailable(): string | undefined {
  const v = spawnSync(PYTHON, ['-c', 'import unicodedata; print(unicodedata.unidata_version)'], { encoding: 'utf8' });
  if (v.status !== 0) return `${PYTHON} not available`;
  if (v.stdout.trim() !== UNICODE_VERSION) return `${PYTHON} has Unicode ${v.stdout.trim()}, the table is ${UNICODE_VERSION}`;
  return undefined;
}

describe('Unicode 14 character table', () => {
  it('classifies the basics as the slow tokenizer does', () => {
    expect([0x00, 0xfffd, 0x200b, 0x85, 0x0378, 0xd800, 0xe000].map(charClass)).toEqual(Array(7).fill(DROP));
    expect([0x20, 0x09, 0x0a, 0x0d, 0xa0, 0x3000, 0x2028, 0x2029].map(charClass)).toEqual(Array(8).fill(SPACE));
    expect([0x21, 0x2f, 0x3a, 0x40, 0x5b, 0x60, 0x7b, 0x7e, 0x24, 0x5e, 0xbf, 0x3001, 0xff01].map(charClass)).toEqual(Array(13).fill(PUNCT));
    expect([0x0301, 0xfe0f, 0x1171e].map(charClass)).toEqual([MN, MN, MN]);
    expect([0x4e2d, 0xf900, 0x2b820, 0x2fa1d].map(charClass)).toEqual([CJK, CJK, CJK, CJK]);
    expect([0x41, 0x7a, 0x30, 0xe9, 0x20e3, 0x093e, 0x1f600, 0x10ffff - 2].map(charClass)).toEqual([OTHER, OTHER, OTHER, OTHER, OTHER, OTHER, OTHER, DROP]);
    // Emoji assigned after Unicode 14 are unassigned (Cn) for Python 3.11: dropped.
    expect([0x1fae8, 0x1fa77, 0x1fabf].map(charClass)).toEqual([DROP, DROP, DROP]);
  });

  it("agrees with the JS engine's \\p{...} except where the engine's Unicode is newer", () => {
    const { newer, other } = compareTableWithEngine();
    console.log(
      `unicode table ${UNICODE_VERSION} vs engine Unicode ${process.versions.unicode ?? '?'}: ` +
        `${newer} code points assigned after ${UNICODE_VERSION} (dropped, as Python 3.11 does), other differences: ${other.join('; ') || 'none'}`,
    );
    expect(other.filter((d) => !KNOWN_CHANGES.includes(d))).toEqual([]);
  });

  describe('against CPython 3.11', () => {
    let skipWhy: string | undefined;
    beforeAll(() => {
      skipWhy = pythonAvailable();
    });

    it('equals a fresh generation from unicodedata', (ctx) => {
      if (skipWhy) ctx.skip(skipWhy);
      const r = spawnSync(PYTHON, [join(ROOT, 'contracts', 'tokenizer', 'generate-unicode-table.py'), '--print'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(CHAR_CLASS_RUNS);
    });

    it("has the engine's per-character lower(), NFC and NFD equal to Python's for every code point the table keeps", (ctx) => {
      if (skipWhy) ctx.skip(skipWhy);
      // Python lists only the characters some mapping changes; all others must be identities here too.
      const script = [
        'import json, sys, unicodedata as u',
        'out = {}',
        'for cp in range(0x110000):',
        '    c = chr(cp)',
        '    if u.category(c)[0] == "C": continue',
        '    m = [c.lower(), u.normalize("NFC", c), u.normalize("NFD", c)]',
        '    if m != [c, c, c]: out[cp] = m',
        'json.dump(out, sys.stdout)',
      ].join('\n');
      const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 26 });
      expect(r.status, r.stderr).toBe(0);
      const py = JSON.parse(r.stdout) as Record<string, [string, string, string]>;
      const bad: string[] = [];
      for (let cp = 0; cp < 0x110000; cp++) {
        if (charClass(cp) === DROP) continue;
        const c = String.fromCodePoint(cp);
        const want = py[cp] ?? [c, c, c];
        const got = [lowerPerChar(c), c.normalize('NFC'), c.normalize('NFD')];
        if (got.join('\u0001') !== want.join('\u0001')) bad.push(`U+${cp.toString(16)}`);
      }
      expect(bad).toEqual([]);
    });

    // Opt-in (about two minutes on 2 cores): TOKENIZER_SWEEP=1 npx vitest run --project node test/node/tokenizer-unicode
    it.runIf(process.env.TOKENIZER_SWEEP)('tokenizes every code point in context exactly as slow_reference.py', (ctx) => {
      if (skipWhy) ctx.skip(skipWhy);
      const contexts = ['a%b', '%\u0308%', '\u03a3%\u03a3.', '[CLS]%[SEP'];
      const script = [
        'import importlib.util, json, sys',
        `spec = importlib.util.spec_from_file_location("ref", ${JSON.stringify(join(ROOT, 'test', 'fixtures', 'tokenizer', 'slow_reference.py'))})`,
        'ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)',
        `vocab = ref.load_vocab(${JSON.stringify(join(ROOT, 'contracts', 'tokenizer', 'vocab.txt'))})`,
        'vocab["[DEC]"] = len(vocab); vocab["[ENC]"] = len(vocab)',
        `ctx = ${JSON.stringify(contexts)}`,
        'out = []',
        'for cp in range(0x110000):',
        '    if 0xD800 <= cp <= 0xDFFF: continue',
        '    for t in ctx: out.append(ref.tokenize(t.replace("%", chr(cp)), vocab, False))',
        'json.dump(out, sys.stdout)',
      ].join('\n');
      const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 30 });
      expect(r.status, r.stderr).toBe(0);
      const py = JSON.parse(r.stdout) as string[][];
      const tok = BertTokenizer.fromVocabText(readFileSync(join(ROOT, 'contracts', 'tokenizer', 'vocab.txt'), 'utf8'));
      const bad: string[] = [];
      let k = 0;
      for (let cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        for (const t of contexts) {
          const ours = tok.tokenize(t.replaceAll('%', String.fromCodePoint(cp)));
          if (ours.join('\u0001') !== (py[k++] ?? []).join('\u0001')) bad.push(`U+${cp.toString(16)} in ${JSON.stringify(t)}`);
        }
      }
      expect(bad.slice(0, 50)).toEqual([]);
    }, 600_000);
  });
});
