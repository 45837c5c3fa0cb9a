// Where the model is when the user does not say: IMAGEREWARD_MODEL (a model
// directory or an ImageReward.pt), else the checkpoint `imagereward fetch-model`
// leaves in the cache. One rule for every command (score, verify-published, serve).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGEREWARD_REPO, defaultHome, repoCacheDir } from './fetch.js';

export interface LocatedModel {
  path: string;
  /** Which rule found it, for messages. */
  from: 'IMAGEREWARD_MODEL' | 'cache';
}

/** The fetched checkpoint's path in the cache (whether or not it exists). */
export function cachedCheckpointPath(env: NodeJS.ProcessEnv = process.env, revision = 'main'): string {
  return join(repoCacheDir(defaultHome(env), IMAGEREWARD_REPO, revision), 'ImageReward.pt');
}

export function locateModel(env: NodeJS.ProcessEnv = process.env): LocatedModel | undefined {
  const explicit = env.IMAGEREWARD_MODEL;
  if (explicit) return { path: explicit, from: 'IMAGEREWARD_MODEL' };
  const cached = cachedCheckpointPath(env);
  return existsSync(cached) ? { path: cached, from: 'cache' } : undefined;
}

export function noModelMessage(env: NodeJS.ProcessEnv = process.env): string {
  return (
    `no model given: pass --model <dir|ImageReward.pt>, set IMAGEREWARD_MODEL, or run \`imagereward fetch-model\` ` +
    `(it downloads into ${cachedCheckpointPath(env)}, where commands look by default)`
  );
}
