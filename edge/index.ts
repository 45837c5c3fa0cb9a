// The edge worker's entry. Issue 6 grows it into the full public API; for now
// it serves health and a tokenization endpoint that proves the shared
// tokenizer runs inside workerd exactly as it does in Node.
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { bodyLimit } from 'hono/body-limit';
import { BertTokenizer, MAX_LENGTH } from '../contracts/tokenizer/index.js';
import { problemResponse } from '../contracts/problem.js';
import { apiProblem } from '../contracts/api/errors.js';
import vocabText from '../contracts/tokenizer/vocab.txt';

export interface Env {
  MODEL_ID: string;
}

let tokenizer: BertTokenizer | undefined;
function sharedTokenizer(): BertTokenizer {
  // Built once per isolate: parsing the 30k-line vocab costs a few ms.
  tokenizer ??= BertTokenizer.fromVocabText(vocabText);
  return tokenizer;
}

const app = new Hono<{ Bindings: Env }>();

app.use('*', requestId());
app.use('*', secureHeaders());
app.use(
  '/v1/*',
  bodyLimit({
    maxSize: 64 * 1024,
    onError: (c) => problemResponse(c, apiProblem('payload_too_large', 'Request body exceeds 64 KiB')),
  }),
);

app.get('/healthz', (c) => c.json({ status: 'ok', model: c.env.MODEL_ID }));

app.post('/v1/tokenize', async (c) => {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return problemResponse(c, apiProblem('invalid_json', 'Body is not valid JSON'));
  }
  const prompt = (body as { prompt?: unknown } | null)?.prompt;
  if (typeof prompt !== 'string') {
    return problemResponse(c, apiProblem('invalid_request', '"prompt" must be a string'));
  }
  return c.json(sharedTokenizer().encode(prompt, MAX_LENGTH));
});

app.notFound((c) => problemResponse(c, apiProblem('not_found', `No route for ${c.req.method} ${c.req.path}`)));
app.onError((err, c) => {
  console.error(JSON.stringify({ level: 'error', requestId: c.get('requestId'), message: String(err) }));
  return problemResponse(c, apiProblem('internal', 'Internal error'));
});

export default app;
