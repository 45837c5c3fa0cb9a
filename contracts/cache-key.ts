// The key of one cached score: which result a (model, prompt, image) triple
// has. The edge computes it to look results up before calling a GPU origin,
// and anything else that caches scores must compute the very same key, so it
// lives here, in the shared contracts, as pure TypeScript over WebCrypto
// (crypto.subtle): it runs unchanged in Node 20 and in workerd.
//
// The prompt enters the key as the model sees it — the 35 padded input ids of
// BertTokenizer.encode(prompt, MAX_LENGTH) — not as text: prompts the model
// cannot tell apart ("A Cat" and "a  cat", "café" and "cafe", two prompts that
// differ only after the 35th token) get the same score, so they share an
// entry. The image enters as the sha256 of its bytes.
//
// The key is sha256 over the UTF-8 bytes of
//
//   "imagereward-result" NUL "v1" NUL <modelId> NUL <ids> NUL <imageSha256>
//
// where NUL is the byte 0x00, "v1" is RESULT_CACHE_KEY_VERSION, <ids> are the
// input ids in decimal joined by "," (no spaces), and <imageSha256> is the
// image digest in lowercase hex (64 characters). The encoding is unambiguous:
// the model id may not contain NUL, the ids field holds only digits and
// commas, and the digest has a fixed length. Changing any of it changes every
// key, so it must come with a new RESULT_CACHE_KEY_VERSION (old entries then
// simply age out of the cache). The result is lowercase hex, 64 characters.
// test/fixtures/cache-keys.generate.ts restates this encoding with node:crypto.
import { MAX_LENGTH } from './tokenizer/bert-tokenizer.js';

export const RESULT_CACHE_KEY_VERSION = 1;

const DOMAIN = 'imagereward-result';
const SHA256_HEX = /^[0-9a-f]{64}$/i;
// With the u flag a well-formed surrogate pair is one code point, so this
// matches only lone surrogates — which TextEncoder would turn into U+FFFD,
// letting two different model ids encode to the same bytes.
const LONE_SURROGATE = /\p{Cs}/u;

const utf8 = new TextEncoder();

function toHex(digest: ArrayBuffer): string {
  let out = '';
  for (const b of new Uint8Array(digest)) out += b.toString(16).padStart(2, '0');
  return out;
}

/** sha256 of `data` (a string is hashed as its UTF-8 bytes), lowercase hex. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? utf8.encode(data) : data;
  return toHex(await crypto.subtle.digest('SHA-256', bytes));
}

/** The "<domain>\0v1\0<model>\0<ids>\0" prefix shared by every image of one prompt; throws on invalid input. */
function keyPrefix(modelId: string, inputIds: readonly number[]): string {
  if (typeof modelId !== 'string' || modelId.length === 0) throw new TypeError('cache key: the model id must be a non-empty string');
  if (modelId.includes('\0')) throw new TypeError('cache key: the model id may not contain NUL');
  if (LONE_SURROGATE.test(modelId)) throw new TypeError('cache key: the model id has a lone surrogate (not valid UTF-16)');
  // Exactly the padded encoding: a shorter (unpadded) or longer list would key
  // the same prompt differently from every other writer of the cache.
  if (!Array.isArray(inputIds) || inputIds.length !== MAX_LENGTH) {
    throw new TypeError(`cache key: expected the ${MAX_LENGTH} padded input ids of BertTokenizer.encode (got ${Array.isArray(inputIds) ? inputIds.length : typeof inputIds})`);
  }
  for (const id of inputIds) {
    if (!Number.isSafeInteger(id) || id < 0) throw new TypeError(`cache key: token ids must be non-negative integers (got ${String(id)})`);
  }
  return `${DOMAIN}\0v${RESULT_CACHE_KEY_VERSION}\0${modelId}\0${inputIds.join(',')}\0`;
}

function checkImageSha(imageSha256: string): string {
  if (typeof imageSha256 !== 'string' || !SHA256_HEX.test(imageSha256)) {
    throw new TypeError('cache key: the image digest must be 64 hex characters (sha256)');
  }
  return imageSha256.toLowerCase();
}

/** The cache key of one (model, prompt ids, image digest) triple: 64 lowercase hex characters. Throws TypeError on invalid input. */
export async function resultCacheKey(modelId: string, inputIds: readonly number[], imageSha256: string): Promise<string> {
  const prefix = keyPrefix(modelId, inputIds);
  return sha256Hex(prefix + checkImageSha(imageSha256));
}

/** The keys of one prompt with each of its images, in order (all inputs are checked before anything is hashed). */
export async function promptImageKeys(modelId: string, inputIds: readonly number[], imageShas: readonly string[]): Promise<string[]> {
  const prefix = keyPrefix(modelId, inputIds);
  const shas = imageShas.map(checkImageSha);
  return Promise.all(shas.map((sha) => sha256Hex(prefix + sha)));
}
