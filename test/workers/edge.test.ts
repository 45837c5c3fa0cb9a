import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';

describe('edge worker', () => {
  it('answers /healthz', async () => {
    const res = await exports.default.fetch('http://edge.test/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
  });
  it('returns problem+json for unknown routes', async () => {
    const res = await exports.default.fetch('http://edge.test/nope');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ code: 'not_found', status: 404 });
  });
});
