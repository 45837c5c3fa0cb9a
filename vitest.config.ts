// Three test projects: `node` (gpu-service, CLI, native addon, parity suites),
// `workers` (the edge and the shared contracts, run inside real workerd through
// @cloudflare/vitest-pool-workers with the bindings from wrangler.toml) and
// `e2e` (test/e2e: load, faults and abuse against a whole loopback stack —
// GPU services + `wrangler dev` — one file at a time, since each starts its own).
import { defineConfig } from 'vitest/config';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: 'forks',
        },
      },
      {
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              // Secrets and test wiring (wrangler.toml holds no secrets): the
              // scripted origins started by the global setup, on loopback.
              bindings: {
                ORIGINS: (inject as (key: string) => string[])('scriptedOrigins').join(','),
                ORIGIN_SECRET: 'test-origin-secret',
                ADMIN_SECRET: 'test-admin-secret',
                // Jobs (test/workers/jobs.test.ts): the job object and the queue consumer read
                // these from the worker's env — short webhook retries, http webhooks to the
                // loopback receiver, a quick stall watchdog.
                WEBHOOK_ALLOW_INSECURE_LOOPBACK: 'on',
                WEBHOOK_RETRY_SCHEDULE: '0.3,0.3,0.3,0.3,0.3,0.3',
                WEBHOOK_TIMEOUT_MS: '2000',
                JOB_STALL_SECONDS: '3',
              },
            },
          })),
        ],
        test: {
          name: 'workers',
          globalSetup: ['test/workers/support/global-setup.ts'],
          // Every file drives the same scripted origins (and their control server): one file at a time.
          fileParallelism: false,
          include: ['test/workers/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          // Each file starts GPU services and wrangler dev: on a 2-core CI box two stacks
          // side by side would starve each other (and skew the RSS bounds).
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
