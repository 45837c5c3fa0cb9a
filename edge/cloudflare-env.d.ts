// Types the worker's own exports for `import { exports } from 'cloudflare:workers'`
// (tests call the worker through exports.default.fetch) and the `env` import.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import('./index.js');
  }
  // An import() type cannot follow `extends` directly (TS2499, hidden by skipLibCheck in .d.ts).
  type EdgeBindings = import('./env.js').Env;
  interface Env extends EdgeBindings {}
}
