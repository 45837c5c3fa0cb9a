// The edge's tokenizer: the shared pure-TS BertTokenizer over the vocab bundled
// into the worker (wrangler.toml [[rules]] Text). Cache keys are built from its
// token ids, so prompts the model cannot tell apart share cache entries.
import { BertTokenizer, MAX_LENGTH } from '../contracts/tokenizer/index.js';
import vocabText from '../contracts/tokenizer/vocab.txt';

let tokenizer: BertTokenizer | undefined;

/** Built once per isolate: parsing the 30k-line vocab costs a few ms. */
export function edgeTokenizer(): BertTokenizer {
  tokenizer ??= BertTokenizer.fromVocabText(vocabText);
  return tokenizer;
}

/** The 35 padded input ids the model sees for `prompt`. */
export function promptIds(prompt: string): number[] {
  return edgeTokenizer().encode(prompt, MAX_LENGTH).input_ids;
}
