// Typed errors for bad image input. Every failure of preprocessImage that is the
// caller's fault (the bytes) is an ImageError with a stable `code` and an HTTP-ish
// `status`; anything else (a bug, the native addon missing) is a plain Error.

export const IMAGE_ERROR_CODES = [
  'image_empty', //               zero bytes
  'image_too_large', //           over maxBytes, or over maxPixels (checked from the header, before decoding)
  'unsupported_image_format', //  not a format we decode (known by its magic bytes, or unknown)
  'image_decode_failed', //       a supported format, but corrupt or truncated
] as const;

export type ImageErrorCode = (typeof IMAGE_ERROR_CODES)[number];

export const IMAGE_ERROR_STATUS: Readonly<Record<ImageErrorCode, number>> = {
  image_empty: 400,
  image_too_large: 413,
  unsupported_image_format: 415,
  image_decode_failed: 422,
};

export class ImageError extends Error {
  readonly code: ImageErrorCode;
  readonly status: number;

  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageError';
    this.code = code;
    this.status = IMAGE_ERROR_STATUS[code];
  }
}

export function isImageError(err: unknown): err is ImageError {
  return err instanceof ImageError;
}

/** Shorthand for the parsers: the file is recognised but its structure is broken. */
export function corrupt(format: string, what: string): ImageError {
  return new ImageError('image_decode_failed', `${format}: ${what}`);
}
