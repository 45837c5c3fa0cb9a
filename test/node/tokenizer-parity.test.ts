// Parity of our tokenizer with the independent references:
//   - the Rust tokenizers library, over the 10k DiffusionDB prompts
//     (../shared/prompts-10k.json) and the committed stress set; every
//     mismatch must be a pinned slow-Python divergence (divergences.json);
//   - the pinned divergences themselves (slow-Python ids, with the reason);
//   - the committed expected.json (also run inside workerd);
//   - slow_reference.py (the slow Python pipeline re-stated on CPython 3.11),
//     over the stress set, when that Python is available.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BertTokenizer, type Encoding } from '../../contracts/tokenizer/index.js';
import { rustEncodeAll, rustTokenizer, type RustEncoding } from '../fixtures/tokenizer/rust-reference.js';

const ROOT = join(import.meta.dirname, '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'tokenizer');
const PROMPTS_10K = join(ROOT, '..', 'shared', 'prompts-10k.json');
const PYTHON = '/usr/bin/python3';

const vocabText = readFileSync(join(ROOT, 'contracts', 'tokenizer', 'vocab.txt'), 'utf8');
const tokenizer = BertTokenizer.fromVocabText(vocabText);
const rust = rustTokenizer(vocabText);

interface Divergence {
  input: string;
  ids: number[];
  tokens: string[];
  length: number;
  rust_ids: number[];
  reason: string;
}
const divergences = (JSON.parse(readFileSync(join(FIXTURES, 'divergences.json'), 'utf8')) as { cases: Divergence[] }).cases;
const stress = (JSON.parse(readFileSync(join(FIXTURES, 'stress.json'), 'utf8')) as { prompts: string[] }).prompts;
interface ExpectedCase {
  input?: string;
  input_utf16?: number[];
  input_ids: number[];
  length: number;
}
const expected = (JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as { cases: ExpectedCase[] }).cases.map((c) => ({
  ...c,
  input: c.input ?? String.fromCharCode(...(c.input_utf16 ?? [])),
}));

const maskOf = (length: number) => Array.from({ length: 35 }, (_, i) => (i < length ? 1 : 0));
const same = (a: Encoding, b: RustEncoding) =>
  a.input_ids.length === b.input_ids.length &&
  a.input_ids.every((x, i) => x === b.input_ids[i]) &&
  a.attention_mask.every((x, i) => x === b.attention_mask[i]);

interface Report {
  prompts: number;
  mismatches: number;
  explained: number;
  unexplained: string[];
}

async function compareWithRust(prompts: readonly string[]): Promise<Report> {
  const refs = await rustEncodeAll(rust, prompts);
  const pinned = new Map(divergences.map((d) => [d.input, d]));
  const report: Report = { prompts: prompts.length, mismatches: 0, explained: 0, unexplained: [] };
  prompts.forEach((p, i) => {
    const ours = tokenizer.encode(p);
    const ref = refs[i];
    if (!ref) throw new Error('missing Rust encoding');
    if (same(ours, ref)) return;
    report.mismatches++;
    const d = pinned.get(p);
    if (d && ours.input_ids.join() === d.ids.join() && ours.attention_mask.join() === maskOf(d.length).join()) {
      report.explained++;
    } else {
      report.unexplained.push(
        `${JSON.stringify(p)}\n  ours: ${ours.input_ids.join(',')}\n  rust: ${ref.input_ids.join(',')}${d ? `\n  pinned slow-Python: ${d.ids.join(',')}` : ''}`,
      );
    }
  });
  return report;
}

function log(name: string, r: Report): void {
  console.log(
    `tokenizer parity vs Rust tokenizers, ${name}: ${r.prompts} prompts, ${r.mismatches} mismatches ` +
      `(${r.explained} pinned slow-Python divergences, ${r.unexplained.length} unexplained)`,
  );
}

describe('parity with the Rust tokenizers library', () => {
  it('stress set: every mismatch is a pinned slow-Python divergence', async () => {
    const r = await compareWithRust(stress);
    log('stress set', r);
    expect(r.unexplained).toEqual([]);
    // Every divergence case is part of the stress set, so all must show up.
    expect(r.explained).toBe(divergences.length);
  });

  it.skipIf(!existsSync(PROMPTS_10K))(
    `10k prompts (../shared/prompts-10k.json${existsSync(PROMPTS_10K) ? '' : ' not found: skipped'})`,
    async () => {
      const prompts = (JSON.parse(readFileSync(PROMPTS_10K, 'utf8')) as { prompts: string[] }).prompts;
      expect(prompts).toHaveLength(10_000);
      const r = await compareWithRust(prompts);
      log('10k prompts', r);
      expect(r.unexplained).toEqual([]);
    },
  );
});

describe('pinned slow-Python divergences from the Rust library', () => {
  it.each(divergences.map((d) => [d.input, d] as const))('%j', async (_input, d) => {
    // Our ids are the slow Python tokenizer's...
    expect(tokenizer.tokenize(d.input)).toEqual(d.tokens);
    expect(tokenizer.encode(d.input)).toEqual({ input_ids: d.ids, attention_mask: maskOf(d.length) });
    // ...and the Rust library still disagrees, for the recorded reason.
    expect(d.reason.length).toBeGreaterThan(20);
    const [ref] = await rustEncodeAll(rust, [d.input]);
    expect(ref?.input_ids).toEqual(d.rust_ids);
    expect(ref?.input_ids).not.toEqual(d.ids);
  });
});

describe('committed expected ids (the fixture the workerd test uses)', () => {
  it(`matches all ${expected.length} cases`, () => {
    const bad = expected.filter((c) => {
      const enc = tokenizer.encode(c.input);
      return enc.input_ids.join() !== c.input_ids.join() || enc.attention_mask.join() !== maskOf(c.length).join();
    });
    expect(bad.map((c) => c.input)).toEqual([]);
  });
});

describe('slow Python re-statement (slow_reference.py)', () => {
  let python: { ok: boolean; why: string } = { ok: false, why: '' };
  beforeAll(() => {
    const v = spawnSync(PYTHON, ['-c', 'import unicodedata; print(unicodedata.unidata_version)'], { encoding: 'utf8' });
    python = v.status === 0 && v.stdout.trim() === '14.0.0' ? { ok: true, why: '' } : { ok: false, why: `${PYTHON} with Unicode 14.0.0 not available` };
  });

  it('agrees on tokens and ids for the whole stress set', (ctx) => {
    if (!python.ok) ctx.skip(python.why);
    const r = spawnSync(PYTHON, [join(FIXTURES, 'slow_reference.py'), join(ROOT, 'contracts', 'tokenizer', 'vocab.txt')], {
      input: JSON.stringify(stress),
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    });
    expect(r.status, r.stderr).toBe(0);
    const py = JSON.parse(r.stdout) as { ids: number[]; tokens: string[] }[];
    const bad = stress.filter((p, i) => {
      const t = tokenizer.tokenize(p);
      return t.join('\u0001') !== py[i]?.tokens.join('\u0001') || tokenizer.encode(p).input_ids.join() !== py[i]?.ids.join();
    });
    expect(bad).toEqual([]);
  });
});
