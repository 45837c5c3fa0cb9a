// imagereward tokenize "<prompt>" | --file <path|-> [--vocab <vocab.txt>]
// Prints one JSON object per prompt per line: {"input_ids":[35],"attention_mask":[35]}.
// The output is a stable contract for scripts: key order and 35-wide arrays never change.
import { readFile } from 'node:fs/promises';
import { CliError, parseCommand, type Io } from './io.js';
import { loadTokenizer } from '../tokenizer.js';
import { MAX_LENGTH } from '../../contracts/tokenizer/index.js';

const HELP = `Usage:
  imagereward tokenize "<prompt>"            one prompt
  imagereward tokenize --file prompts.txt     one prompt per line ("-" reads stdin)

Options:
  --file <path>    read prompts from a file, one per line (a trailing \\r is
                   dropped, so CRLF files work; the last empty line is ignored)
  --vocab <path>   a BERT vocab.txt other than the bundled bert-base-uncased one

Prints {"input_ids": [${MAX_LENGTH} ints], "attention_mask": [${MAX_LENGTH} ints]} per prompt, one per line,
exactly as ImageReward's BertTokenizer (padding='max_length', truncation=True, max_length=${MAX_LENGTH}).
`;

export async function tokenizeCommand(argv: string[], io: Io): Promise<number> {
  const parsed = parseCommand(argv, { file: { type: 'string' }, vocab: { type: 'string' } }, HELP, io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if ((values.file === undefined) === (positionals.length === 0) || positionals.length > 1) {
    throw new CliError(`give exactly one prompt argument or --file\n\n${HELP}`, 2);
  }

  const tokenizer = await loadTokenizer(values.vocab).catch((err: unknown) => {
    throw new CliError(`cannot load vocab: ${(err as Error).message}`);
  });

  const prompts = values.file !== undefined ? await readPrompts(values.file) : [positionals[0] ?? ''];
  // Batch output into chunks: one write per ~1000 prompts keeps 10k-prompt files fast.
  let chunk = '';
  for (let i = 0; i < prompts.length; i++) {
    const enc = tokenizer.encode(prompts[i] ?? '', MAX_LENGTH);
    chunk += `{"input_ids":[${enc.input_ids.join(',')}],"attention_mask":[${enc.attention_mask.join(',')}]}\n`;
    if (chunk.length > 1 << 16) {
      io.stdout(chunk);
      chunk = '';
    }
  }
  if (chunk) io.stdout(chunk);
  return 0;
}

async function readPrompts(path: string): Promise<string[]> {
  let text: string;
  try {
    text = path === '-' ? await readStdin() : await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of process.stdin) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}
