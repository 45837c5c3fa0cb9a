// Reading vocab.txt the way transformers' `load_vocab` does: the file is opened
// in text mode (universal newlines: '\r\n', '\r' and '\n' all end a line),
// each line minus its newline is a token, its 0-based line number is the id,
// and a later duplicate line overwrites the earlier id (a dict assignment).
// A final newline does not start an extra empty token.

export type Vocab = Map<string, number>;

export function parseVocab(text: string): Vocab {
  const vocab: Vocab = new Map();
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) vocab.set(lines[i] ?? '', i);
  return vocab;
}

/**
 * Adds tokens the way `add_special_tokens` does: a token already in the vocab
 * keeps its id, a new one gets the next id (`len(get_vocab())`, i.e. the number
 * of distinct tokens so far — for bert-base-uncased [DEC] = 30522, [ENC] = 30523).
 */
export function addTokens(vocab: Vocab, tokens: readonly string[]): void {
  for (const t of tokens) if (!vocab.has(t)) vocab.set(t, vocab.size);
}
