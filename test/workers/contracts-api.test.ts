// The scoring API's contract (contracts/api) inside workerd: the edge imports
// the same schemas, error table, limits and OpenAPI document as the GPU service.
import { describe, expect, it } from 'vitest';
import { BatchScoreRequestSchema, DEFAULT_LIMITS, ERROR_CODES, ScoreRequestSchema, apiProblem, openApiDocument, promptTooLong } from '../../contracts/api/index.js';

describe('contracts/api in workerd', () => {
  it('validates score requests', () => {
    expect(ScoreRequestSchema.safeParse({ prompt: 'p', images: [{ data: 'AAAA' }, { url: 'https://example.com/a.png' }] }).success).toBe(true);
    expect(ScoreRequestSchema.safeParse({ prompt: 'p', images: [] }).success).toBe(false);
    expect(ScoreRequestSchema.safeParse({ images: [{ data: 'AAAA' }] }).success).toBe(false);
    expect(BatchScoreRequestSchema.safeParse({ requests: [{ prompt: 'p', images: [{ data: 'AAAA' }] }] }).success).toBe(true);
  });

  it('builds problems and the OpenAPI document', () => {
    const p = apiProblem('queue_full', 'busy', { requestId: 'r1' });
    expect(p).toMatchObject({ status: ERROR_CODES.queue_full.status, code: 'queue_full', request_id: 'r1', instance: 'urn:request:r1' });
    expect(openApiDocument().openapi).toBe('3.1.0');
    expect(promptTooLong('x'.repeat(DEFAULT_LIMITS.maxPromptChars + 1), DEFAULT_LIMITS.maxPromptChars)).toBe(true);
  });
});
