// What `npm start` prints once everything answers: where things are, which model
// (DEMO label when it is random weights) and backend, and curl lines that work
// as pasted (absolute image path; the job's id is pulled out with node, which is
// there whenever npm is, so no jq is needed).
import type { SampleImage } from './sample-image.js';

export interface StackSummaryInput {
  edgeUrl: string;
  gpuUrl: string;
  modelId: string;
  modelDir: string;
  demo: boolean;
  backend: string;
  skippedBackends: string[];
  stateDir: string;
  image: SampleImage;
  gpuPid: number;
  edgePid: number;
}

/** Single-quotes a string for sh/bash. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

export function stackSummary(s: StackSummaryInput): string {
  const img = shellQuote(s.image.path);
  const prompt = shellQuote(s.image.prompt);
  // The body goes through stdin: a real image's base64 is too long for one argument.
  const prefix = `{"items":[{"id":"example","prompt":${JSON.stringify(s.image.prompt)},"images":[{"data":"`;
  const jobBody = `{ printf %s ${shellQuote(prefix)}; base64 < ${img} | tr -d '\\n'; printf %s '"}]}]}'; }`;
  const lines = [
    '',
    '============================================================================',
    ' imagereward stack is ready — Ctrl-C stops everything',
    '============================================================================',
    ` edge (use this)   ${s.edgeUrl}        (wrangler dev: cache, rate limits, jobs)`,
    ` GPU service       ${s.gpuUrl}   (needs the edge's random origin key; call the edge)`,
    ` model             ${s.modelId}${s.demo ? '   *** DEMO MODEL: random weights, scores are meaningless ***' : ''}`,
    `                   ${s.modelDir}`,
    ` backend           ${s.backend}${s.skippedBackends.length > 0 ? `   (not used: ${s.skippedBackends.join('; ')})` : ''}`,
    ` state             ${s.stateDir}`,
    ` processes         GPU service pid ${s.gpuPid}, wrangler pid ${s.edgePid} (with its workerd)`,
    '',
    ' AUTH is off: the edge takes requests without an API key. For local use only —',
    ' do not expose this port (deploy with AUTH=required and `imagereward keys`).',
    '',
    ' Score an image (run it twice: X-Cache MISS, then HIT):',
    `   curl -s -D - ${s.edgeUrl}/v1/score -F prompt=${prompt} -F image=@${img}`,
    '',
    ' Submit a job and read its status:',
    `   ID=$(${jobBody} | curl -s ${s.edgeUrl}/v1/jobs -H 'content-type: application/json' --data-binary @- | node -pe 'JSON.parse(require("fs").readFileSync(0,"utf8")).id')`,
    `   curl -s ${s.edgeUrl}/v1/jobs/$ID`,
    '',
    ` Docs: ${s.edgeUrl}/docs   Models: ${s.edgeUrl}/v1/models`,
    '============================================================================',
    '',
  ];
  return lines.join('\n');
}
