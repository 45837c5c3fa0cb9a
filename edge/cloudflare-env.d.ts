// Types the worker's own exports for `import { exports } from 'cloudflare:workers'`
// (tests call the worker through exports.default.fetch) and the `env` import.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import('./index.js');
  }
  interface Env extends import('./env.js').Env {}
}
