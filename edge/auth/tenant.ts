// Who is calling: the metadata stored with an API key (edge/auth/api-keys.ts),
// or the anonymous tenant when AUTH=off.

/** Rate-limit tiers; each is one `[[ratelimits]]` binding in wrangler.toml. */
export const TIERS = ['trial', 'standard', 'high'] as const;
export type Tier = (typeof TIERS)[number];

export interface TenantInfo {
  /** Stable tenant id (several keys may share one tenant). */
  tenant: string;
  /** The key's id (first 16 hex digits of its sha256), or "anonymous". */
  keyId: string;
  tier: Tier;
}
