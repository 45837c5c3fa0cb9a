// The scoring API's contract, shared by the GPU service and the edge.
export * from './limits.js';
export * from './errors.js';
export * from './schemas.js';
export * from './routes.js';
export * from './ranking.js';
export * from './inputs.js';
export * from './docs-page.js';
export * from './jobs.js';
export * from './url-fetch-error.js';
