// Images as the API takes them: raw bytes become {data: base64}; {data} and
// {url} inputs pass through. Pure JS base64 (btoa), so it runs in Node 20,
// browsers and Workers alike; Node's Buffer is a Uint8Array and works as is.
import type { ImageInput } from '../contracts/api/schemas.js';

/** An image to score: its bytes, or an ImageInput ({data: base64} or {url}). */
export type ClientImage = Uint8Array | ImageInput;

/** Bytes per String.fromCharCode call: keeps the argument list well under engines' limits. */
const CHUNK = 0x8000;

/** Standard base64 of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += CHUNK) bin += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(bin);
}

export function encodeImage(image: ClientImage): ImageInput {
  return image instanceof Uint8Array ? { data: toBase64(image) } : image;
}
