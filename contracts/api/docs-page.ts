// The human-readable /docs page of the API (the GPU service and the edge serve
// it; each lists its own routes). Built from the one error table, so the page
// cannot drift from the codes the servers answer with. No external scripts:
// it renders offline and under a strict Content-Security-Policy.
import { ERROR_CODES } from './errors.js';

export interface DocsPageOptions {
  title?: string;
  /** One HTML list item body per route (trusted, written by us). */
  routes: readonly string[];
  /** Extra HTML paragraphs after the routes (trusted). */
  notes?: readonly string[];
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function apiDocsPage(opts: DocsPageOptions): string {
  const title = esc(opts.title ?? 'ImageReward scoring API');
  const rows = Object.entries(ERROR_CODES)
    .map(([code, info]) => `<tr><td><code>${code}</code></td><td>${info.status}</td><td>${esc(info.description)}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}</style>
</head><body>
<h1>${title}</h1>
<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<h2>Routes</h2>
<ul>
${opts.routes.map((r) => `<li>${r}</li>`).join('\n')}
</ul>
<p>Authentication (when the server has API keys): <code>Authorization: Bearer &lt;key&gt;</code>.</p>
${(opts.notes ?? []).map((n) => `<p>${n}</p>`).join('\n')}
<h2>Errors</h2>
<p>RFC 9457 <code>application/problem+json</code>, with a stable <code>code</code> and the <code>request_id</code> (also in the <code>X-Request-Id</code> header).</p>
<table><tr><th>code</th><th>status</th><th>meaning</th></tr>
${rows}
</table>
</body></html>
`;
}
