// `imagereward verify-published`: the released weights against upstream's
// published example rewards (runs only where the real ImageReward.pt is present),
// and the command's comparison logic on the tiny224 model with a published.json
// written from its PyTorch-reference rewards (test/fixtures/model/tiny224-e2e.json).
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError, type Io } from '../../gpu-service/cli/io.js';
import { defaultPublishedPath, verifyPublishedCommand, type Published } from '../../gpu-service/cli/verify-published.js';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { locateModel } from '../../gpu-service/model/locate.js';
import { IMAGEREWARD_V1_SHA256 } from '../../gpu-service/model/model-dir.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SHARED_PUBLISHED = join(ROOT, '..', 'shared', 'published.json');

interface E2eFixture {
  checkpointSha256: string;
  config: ImageRewardConfig;
  images: string[];
  cases: { prompt: string; rewards: number[]; ranking: number[] }[];
}
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as E2eFixture;

async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string; errCode?: string }> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) };
  try {
    return { code: await verifyPublishedCommand(argv, io, env), stdout, stderr };
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    return { code: err.exitCode, stdout, stderr: stderr + err.message, ...(err.code !== undefined ? { errCode: err.code } : {}) };
  }
}

// The real checkpoint: IMAGEREWARD_MODEL, or where `imagereward fetch-model` puts it.
const real = locateModel(process.env);
const realReason = !existsSync(SHARED_PUBLISHED)
  ? `../shared/published.json not found beside the project`
  : !real
    ? 'no real ImageReward.pt here (set IMAGEREWARD_MODEL or run `imagereward fetch-model`; the Hub is unreachable in CI)'
    : undefined;

describe('verify-published with the released weights', () => {
  it.skipIf(realReason !== undefined)(`reproduces upstream's README rewards (|diff| <= 0.01, same ranking)${realReason ? ` — skipped: ${realReason}` : ''}`, async () => {
    const r = await run(['--json'], { ...process.env, IMAGEREWARD_SHARED: join(ROOT, '..', 'shared') });
    const out = JSON.parse(r.stdout) as { pass: boolean; maxAbsDiff: number; sameRanking: boolean };
    expect(out.sameRanking).toBe(true);
    expect(out.maxAbsDiff).toBeLessThanOrEqual(0.01);
    expect(out.pass).toBe(true);
    expect(r.code).toBe(0);
  }, 600_000);
});

describe('verify-published (logic, on the tiny224 model)', () => {
  let work: string;
  let modelDir: string;
  const c = fixture.cases[0]!;
  const images = fixture.images.map((p) => join(ROOT, p));
  const env = (): NodeJS.ProcessEnv => ({ IMAGEREWARD_HOME: join(work, 'empty-home') });

  async function publish(name: string, patch: Partial<Published> = {}): Promise<string> {
    const p: Published = { prompt: c.prompt, images, rewards: c.rewards, ranking: c.ranking, checkpoint: { sha256: fixture.checkpointSha256 }, ...patch };
    const path = join(work, name);
    await writeFile(path, JSON.stringify(p));
    return path;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ir-verify-'));
    modelDir = (await convertCheckpoint({ checkpoint: join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt'), out: join(work, 'model'), config: fixture.config })).dir;
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('passes when the rewards match, printing a row per image', async () => {
    const r = await run(['--model', modelDir, '--published', await publish('ok.json'), '--threads', '1'], env());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(2 + images.length + 1);
    expect(r.stdout).toMatch(/^PASS: max \|diff\| /m);
  });

  it('fails (exit 1, verify_mismatch) when one reward is off by more than the tolerance', async () => {
    const rewards = [...c.rewards];
    rewards[2] = (rewards[2] as number) + 0.02;
    const path = await publish('off.json', { rewards });
    const r = await run(['--model', modelDir, '--published', path, '--json'], env());
    expect(r.code).toBe(1);
    expect(r.errCode).toBe('verify_mismatch');
    const out = JSON.parse(r.stdout) as { pass: boolean; maxAbsDiff: number; rows: { diff: number }[] };
    expect(out.pass).toBe(false);
    expect(out.maxAbsDiff).toBeGreaterThan(0.019);
    expect(out.rows[2]!.diff).toBeGreaterThan(0.019);
    // A looser tolerance accepts it.
    expect((await run(['--model', modelDir, '--published', path, '--tolerance', '0.05'], env())).code).toBe(0);
  });

  it('fails when the ranking differs even with every reward within tolerance', async () => {
    const ranking = [...c.ranking];
    [ranking[0], ranking[1]] = [ranking[1]!, ranking[0]!];
    const r = await run(['--model', modelDir, '--published', await publish('rank.json', { ranking }), '--tolerance', '10'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ranking differs/);
  });

  it('refuses a model that is not the published checkpoint', async () => {
    const r = await run(['--model', modelDir, '--published', await publish('real.json', { checkpoint: { sha256: IMAGEREWARD_V1_SHA256 } })], env());
    expect(r.code).toBe(1);
    expect(r.errCode).toBe('not_published_weights');
    expect(r.stderr).toMatch(/converted from tiny224\.pt .*imagereward fetch-model/);
  });

  it('says what to do when the model or published.json is missing; usage errors exit 2', async () => {
    const noModel = await run(['--published', await publish('x.json')], env());
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toMatch(/no model given.*imagereward fetch-model/);
    const noFile = await run(['--model', modelDir, '--published', join(work, 'nope.json')], env());
    expect(noFile.code).toBe(1);
    expect(noFile.errCode).toBe('published_missing');
    await writeFile(join(work, 'bad.json'), JSON.stringify({ prompt: 'x', images: ['a'], rewards: [] }));
    expect((await run(['--model', modelDir, '--published', join(work, 'bad.json')], env())).errCode).toBe('published_invalid');
    expect((await run(['--tolerance', '-1'], env())).code).toBe(2);
    expect((await run(['extra'], env())).code).toBe(2);
    expect(defaultPublishedPath({ IMAGEREWARD_SHARED: '/s' })).toBe('/s/published.json');
    expect(defaultPublishedPath({})).toBe(join(ROOT, '..', 'shared', 'published.json'));
  });
});
