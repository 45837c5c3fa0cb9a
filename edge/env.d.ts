// Types the worker's own exports for `import { exports } from 'cloudflare:workers'`
// (tests call the worker through exports.default.fetch).
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import('./index.js');
  }
}
