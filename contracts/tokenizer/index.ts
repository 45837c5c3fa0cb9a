// The shared BERT tokenizer (see bert-tokenizer.ts): one implementation for the
// edge worker and the GPU service, bit-exact with ImageReward's slow Python
// BertTokenizer. Files are named after what they export.
export { BertTokenizer, MAX_LENGTH, type Encoding } from './bert-tokenizer.js';
export { basicTokenize, basicTokenizeToArray, type TokenSink } from './basic-tokenizer.js';
export { WordPiece, MAX_INPUT_CHARS_PER_WORD, CONTINUATION_PREFIX } from './wordpiece.js';
export { SPECIAL_TOKENS, ADDED_TOKENS, splitOnSpecialTokens } from './special-tokens.js';
export { parseVocab, addTokens, type Vocab } from './vocab.js';
export { charClass, lowerPerChar, OTHER, DROP, SPACE, PUNCT, MN, CJK } from './unicode.js';
export { UNICODE_VERSION } from './unicode-table.js';
