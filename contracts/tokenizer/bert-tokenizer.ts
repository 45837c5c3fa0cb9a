// The tokenizer ImageReward builds with
//   BertTokenizer.from_pretrained('bert-base-uncased')
//   + add_special_tokens({'bos_token': '[DEC]'})
//   + add_special_tokens({'additional_special_tokens': ['[ENC]']})
// and calls as tokenizer(prompt, padding='max_length', truncation=True, max_length=35),
// reproducing the slow (pure Python) tokenizer bit for bit. Pure TypeScript,
// no Node APIs: it runs in Node and in Cloudflare Workers alike.
import { basicTokenize } from './basic-tokenizer.js';
import { ADDED_TOKENS, SPECIAL_TOKENS, splitOnSpecialTokens } from './special-tokens.js';
import { addTokens, parseVocab, type Vocab } from './vocab.js';
import { WordPiece } from './wordpiece.js';

export const MAX_LENGTH = 35;

export interface Encoding {
  input_ids: number[];
  attention_mask: number[];
}

export class BertTokenizer {
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  private readonly wordpiece: WordPiece;
  private readonly specialIds: Map<string, number>;
  private idToToken: string[] | undefined;

  private constructor(private readonly vocab: Vocab) {
    // The WordPiece model sees the vocab with [DEC]/[ENC] added too; that is
    // harmless because no BasicTokenizer token can contain '[' together with
    // letters (brackets are punctuation, split off on their own).
    this.wordpiece = new WordPiece(vocab);
    this.specialIds = new Map(SPECIAL_TOKENS.map((t) => [t, idOf(vocab, t)]));
    this.clsId = idOf(vocab, '[CLS]');
    this.sepId = idOf(vocab, '[SEP]');
    this.padId = idOf(vocab, '[PAD]');
  }

  /** From vocab.txt content (one token per line, id = line number); adds [DEC] and [ENC]. */
  static fromVocabText(text: string): BertTokenizer {
    const vocab = parseVocab(text);
    addTokens(vocab, ADDED_TOKENS);
    return new BertTokenizer(vocab);
  }

  /** Number of tokens including the added ones (30524 for bert-base-uncased). */
  get vocabSize(): number {
    return this.vocab.size;
  }

  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  idToTokenString(id: number): string | undefined {
    if (!this.idToToken) {
      this.idToToken = [];
      for (const [t, i] of this.vocab) this.idToToken[i] = t;
    }
    return this.idToToken[id];
  }

  /**
   * Token ids without [CLS]/[SEP] (`tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))`).
   * With `limit`, stops once at least that many ids are produced (the result
   * may then be longer; its first `limit` ids are exact).
   */
  tokenIds(text: string, limit = Infinity): number[] {
    const ids: number[] = [];
    if (limit <= 0) return ids;
    const wp = this.wordpiece;
    const emit = (word: string): boolean => {
      wp.encodeWord(word, ids);
      return ids.length < limit;
    };
    let going = true;
    splitOnSpecialTokens(
      text,
      SPECIAL_TOKENS,
      (chunk) => {
        if (going) going = basicTokenize(chunk, emit);
      },
      (special) => {
        if (going) {
          ids.push(this.specialIds.get(special) ?? wp.unkId);
          going = ids.length < limit;
        }
      },
    );
    return ids;
  }

  /** Wordpiece tokens, special tokens included, no [CLS]/[SEP] (`tokenizer.tokenize(text)`). */
  tokenize(text: string): string[] {
    return this.tokenIds(text).map((id) => this.idToTokenString(id) ?? '[UNK]');
  }

  /**
   * `tokenizer(text, padding='max_length', truncation=True, max_length=maxLength)`:
   * [CLS] + the first maxLength - 2 ids + [SEP], padded with [PAD] (0).
   */
  encode(text: string, maxLength = MAX_LENGTH): Encoding {
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
    const body = this.tokenIds(text, maxLength - 2);
    const n = Math.min(body.length, maxLength - 2);
    const input_ids = new Array<number>(maxLength);
    const attention_mask = new Array<number>(maxLength);
    input_ids[0] = this.clsId;
    for (let i = 0; i < n; i++) input_ids[i + 1] = body[i] ?? this.padId;
    input_ids[n + 1] = this.sepId;
    for (let i = 0; i < maxLength; i++) {
      if (i > n + 1) input_ids[i] = this.padId;
      attention_mask[i] = i <= n + 1 ? 1 : 0;
    }
    return { input_ids, attention_mask };
  }
}

function idOf(vocab: Vocab, token: string): number {
  const id = vocab.get(token);
  if (id === undefined) throw new Error(`vocab has no ${token}`);
  return id;
}
