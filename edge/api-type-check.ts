// Compile-time only (imported by nothing; `tsc -p edge/tsconfig.json` checks
// it): the typed client's route table (contracts/api/edge-schema.ts) and the
// edge must not drift apart.
//
// What the types can see: EdgeSchema (what `hc` clients call) against
// EDGE_ROUTES (paths + methods as a value). Every EdgeSchema path must be in
// EDGE_ROUTES and back, and every `$method` of a path must be among its
// methods. The edge's own router is not visible to types (its sub-apps are
// not method chains, and index.ts's ROUTES map is `Map<string, …>`), so the
// last step — that the edge really answers each path — is checked against a
// live `wrangler dev` in test/node/client.test.ts ("the edge routes every
// path of EdgeSchema").
import type { EDGE_ROUTES, EdgeSchema } from '../contracts/api/edge-schema.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

type Routes = typeof EDGE_ROUTES;

/** `$post` → 'POST'. */
type MethodOf<K> = K extends `$${infer M}` ? Uppercase<M> : never;

/** The paths of EdgeSchema whose methods are not all listed in EDGE_ROUTES (never when they agree). */
type UnlistedMethods = {
  [P in keyof EdgeSchema]: P extends keyof Routes ? (Exclude<MethodOf<keyof EdgeSchema[P]>, Routes[P][number]> extends never ? never : P) : P;
}[keyof EdgeSchema];

/** GET-like methods listed in EDGE_ROUTES with no typed endpoint (HEAD rides on GET). */
type UntypedMethods = {
  [P in keyof Routes]: P extends keyof EdgeSchema ? (Exclude<Routes[P][number], MethodOf<keyof EdgeSchema[P]> | 'HEAD'> extends never ? never : P) : P;
}[keyof Routes];

export type EdgeRouteChecks = [
  Expect<Equal<keyof EdgeSchema, keyof Routes>>,
  Expect<Equal<UnlistedMethods, never>>,
  Expect<Equal<UntypedMethods, never>>,
];
