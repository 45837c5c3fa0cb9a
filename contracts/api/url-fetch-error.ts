// The failure of fetching one `{url}` image, shared by the GPU service's fetcher
// (gpu-service/net/safe-fetch.ts) and the edge's (edge/images/fetch-image.ts):
// one set of codes, each with its status from the one error table.
import { ERROR_CODES } from './errors.js';

export type UrlFetchErrorCode = 'url_forbidden' | 'url_fetch_failed' | 'url_timeout' | 'url_too_large' | 'url_not_image' | 'url_scheme';

export class UrlFetchError extends Error {
  override name = 'UrlFetchError';
  /** The HTTP status of `code` in the shared error table. */
  readonly status: number;
  constructor(
    readonly code: UrlFetchErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = ERROR_CODES[code].status;
  }
}
