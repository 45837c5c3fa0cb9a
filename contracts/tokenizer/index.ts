// PLACEHOLDER: replaced by the tokenizer implementation.
export const MAX_LENGTH = 35;
export interface Encoding { input_ids: number[]; attention_mask: number[] }
export class BertTokenizer {
  static fromVocabText(_text: string): BertTokenizer { return new BertTokenizer(); }
  encode(_text: string, _maxLength = MAX_LENGTH): Encoding { return { input_ids: [], attention_mask: [] }; }
}
