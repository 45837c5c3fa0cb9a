// RFC 9457 problem details, shared by the edge and the GPU service so that a
// client sees the same error shape and the same stable `code` from either.
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  [extension: string]: unknown;
}

const TYPE_BASE = 'https://imagereward-serve.dev/problems/';

export function problem(code: string, status: number, detail: string, extra: Record<string, unknown> = {}): Problem {
  return { type: TYPE_BASE + code, title: code.replace(/_/g, ' '), status, detail, code, ...extra };
}

/** Minimal shape of a Hono context we need, so this file stays framework-light. */
interface JsonContext {
  get(key: 'requestId'): string | undefined;
}

export function problemResponse(c: JsonContext, p: Problem, headers: Record<string, string> = {}): Response {
  const body: Problem = { ...p };
  const id = c.get('requestId');
  if (id) body.instance = `urn:request:${id}`;
  return new Response(JSON.stringify(body), {
    status: p.status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  });
}
