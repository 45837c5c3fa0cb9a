// The edge worker inside workerd, through its default export's fetch.
import { env, exports } from 'cloudflare:workers';
import { createKey } from '../../edge/auth/api-keys.js';
import { describe, expect, it } from 'vitest';

let key: string | undefined;
async function post(body: string, type = 'application/json'): Promise<Response> {
  key ??= (await createKey(env.API_KEYS, { tenant: 'edge-test', name: 'edge test', tier: 'high' })).key;
  return exports.default.fetch('http://edge.test/v1/tokenize', { method: 'POST', headers: { 'content-type': type, authorization: `Bearer ${key}` }, body });
}

describe('edge worker', () => {
  it('answers /healthz with the model id and a request id', async () => {
    const res = await exports.default.fetch('http://edge.test/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', model: 'ImageReward-v1.0', origins: [{ state: 'closed' }, { state: 'closed' }, { state: 'closed' }] });
    expect(res.headers.get('x-request-id')).toBeTruthy();
  });

  it('tokenizes inside workerd with the bundled vocab', async () => {
    const res = await post(JSON.stringify({ prompt: 'A Cat on [SEP] Mars' }));
    expect(res.status).toBe(200);
    const out = (await res.json()) as { input_ids: number[]; attention_mask: number[] };
    // [CLS] a cat on [SEP] mars [SEP], ids = vocab line numbers.
    expect(out.input_ids.slice(0, 8)).toEqual([101, 1037, 4937, 2006, 102, 7733, 102, 0]);
    expect(out.attention_mask.reduce((a, b) => a + b, 0)).toBe(7);
    expect(out.input_ids).toHaveLength(35);
  });

  it.each([
    ['invalid JSON', '{"prompt":', 400, 'invalid_json'],
    ['a non-string prompt', JSON.stringify({ prompt: 42 }), 400, 'invalid_request'],
    ['a prompt over maxPromptChars', JSON.stringify({ prompt: 'x'.repeat(2049) }), 422, 'prompt_too_long'],
  ])('answers %s with problem+json', async (_name, body, status, code) => {
    const res = await post(body);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const p = (await res.json()) as { code: string; status: number; instance: string };
    expect(p).toMatchObject({ code, status });
    expect(p.instance).toMatch(/^urn:request:/);
  });

  it('returns problem+json for unknown routes', async () => {
    const res = await exports.default.fetch('http://edge.test/nope');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ code: 'not_found', status: 404 });
  });
});
