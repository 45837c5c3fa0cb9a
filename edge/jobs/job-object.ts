// One Durable Object (SQLite storage) per job: the single source of truth for
// its items, their results, its chunks' progress, its webhook deliveries and
// its expiry.
//
//   items(idx, client_id, chunk, input, status, result, error)   one row per item
//   chunks(chunk, status, enqueued_at, attempts)                  one row per queue message
//   deliveries(n, webhook_id, event, attempt, at, outcome, …)      the delivery log
//   kv 'job'                                                       the job's meta (JobMeta)
//
// Exactly once: a result is written only while its item is still `pending`
// (UPDATE … WHERE status = 'pending'), so a chunk retried by the queue, sent
// again by the watchdog, or delivered twice never changes a recorded result.
//
// One alarm drives three things: the watchdog (while the job runs, chunks that
// got no result within JOB_STALL_SECONDS of being enqueued are enqueued again —
// a lost message or a restarted `wrangler dev` cannot stall a job), webhook
// delivery (attempts on the retry schedule, Retry-After honoured, stop on 410),
// and expiry (JOB_RETENTION_SECONDS after the job ends: blobs and storage deleted).
import { DurableObject } from 'cloudflare:workers';
import { isFinalJobStatus, type ItemError, type Job, type JobItem, type JobItemResult, type JobStatus, type WebhookDelivery } from '../../contracts/api/index.js';
import type { Env } from '../env.js';
import { jobConfig } from './job-config.js';
import { deliverWebhook, nextDelaySeconds, retrySchedule } from './webhook-sender.js';

/** One image of a stored item: an R2 blob (inline bytes), a URL to fetch when scored, or its error found at submission. */
export type StoredImage = { blob: string } | { url: string } | { error: ItemError };
export interface StoredItemInput {
  id?: string;
  prompt: string;
  images: StoredImage[];
}

/** A queue message: one chunk of one job. */
export interface ChunkMessage {
  job: string;
  chunk: number;
}

export interface CreateJobInput {
  id: string;
  tenant: string;
  /** sha256 of the request body: the same Idempotency-Key with another body is refused. */
  payloadSha: string;
  idempotencyKey?: string;
  items: StoredItemInput[];
  webhook?: { url: string; secret: string; generated: boolean };
  metadata?: Record<string, string | number | boolean | null>;
  statusUrl: string;
}

export type CreateJobResult = { kind: 'created' | 'replayed'; job: Job } | { kind: 'payload_mismatch' } | { kind: 'in_progress' };

export interface ChunkWork {
  /** False when the job is cancelled, finished or gone: ack the message and do nothing. */
  run: boolean;
  tenant: string;
  items: { idx: number; input: StoredItemInput }[];
}

export type ItemOutcome = { idx: number; result: JobItemResult } | { idx: number; error: { code: string; message: string; status: number } };

interface JobMeta {
  id: string;
  tenant: string;
  status: JobStatus | 'creating';
  payload_sha: string;
  created_at: string;
  updated_at: string;
  completed_at?: string;
  expires_at?: string;
  status_url: string;
  total: number;
  metadata?: Record<string, string | number | boolean | null>;
  webhook?: { url: string; secret: string };
  /** The pending webhook message, if any. */
  delivery?: { webhook_id: string; event: 'job.completed' | 'job.failed'; attempts: number; next_at: number; done: boolean; timestamp: string };
}

const iso = (ms: number) => new Date(ms).toISOString();

export class JobObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS items (idx INTEGER PRIMARY KEY, client_id TEXT, chunk INTEGER NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS chunks (chunk INTEGER PRIMARY KEY, status TEXT NOT NULL, enqueued_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0)`);
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS deliveries (n INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT NOT NULL, event TEXT NOT NULL, attempt INTEGER NOT NULL, at TEXT NOT NULL, outcome TEXT NOT NULL, status INTEGER, error TEXT, ms REAL NOT NULL, next_attempt_at TEXT)`,
    );
  }

  private meta(): JobMeta | undefined {
    return this.ctx.storage.kv.get<JobMeta>('job');
  }

  private saveMeta(m: JobMeta): void {
    m.updated_at = iso(Date.now());
    this.ctx.storage.kv.put('job', m);
  }

  // -------------------------------------------------------------------------
  // Creation

  async create(input: CreateJobInput): Promise<CreateJobResult> {
    const existing = this.meta();
    if (existing) {
      if (existing.payload_sha !== input.payloadSha) return { kind: 'payload_mismatch' };
      if (existing.status === 'creating') return { kind: 'in_progress' };
      return { kind: 'replayed', job: this.view(existing, { items: false }) };
    }
    const cfg = jobConfig(this.env);
    const now = Date.now();
    const meta: JobMeta = {
      id: input.id,
      tenant: input.tenant,
      status: 'creating',
      payload_sha: input.payloadSha,
      created_at: iso(now),
      updated_at: iso(now),
      status_url: input.statusUrl,
      total: input.items.length,
      ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
      ...(input.webhook !== undefined ? { webhook: { url: input.webhook.url, secret: input.webhook.secret } } : {}),
    };
    // Everything below up to the first await is one atomic write (the object's implicit transaction).
    const chunkCount = Math.ceil(input.items.length / cfg.chunkItems);
    input.items.forEach((item, idx) => {
      this.sql.exec('INSERT INTO items (idx, client_id, chunk, input, status) VALUES (?, ?, ?, ?, ?)', idx, item.id ?? null, Math.floor(idx / cfg.chunkItems), JSON.stringify(item), 'pending');
    });
    for (let c = 0; c < chunkCount; c++) this.sql.exec('INSERT INTO chunks (chunk, status) VALUES (?, ?)', c, 'pending');
    this.saveMeta(meta);
    // The watchdog is armed before the messages go out: if sending fails, or the process dies, it sends them.
    await this.ctx.storage.setAlarm(now + cfg.stallSeconds * 1000);
    try {
      await this.enqueue([...Array(chunkCount).keys()]);
    } catch (err) {
      console.error(JSON.stringify({ level: 'warn', event: 'job_enqueue_failed', job: input.id, message: String(err) }));
    }
    meta.status = 'queued';
    this.saveMeta(meta);
    const job = this.view(meta, { items: false });
    if (input.webhook?.generated && job.webhook) job.webhook.secret = input.webhook.secret;
    return { kind: 'created', job };
  }

  private async enqueue(chunks: number[]): Promise<void> {
    const id = this.meta()?.id;
    if (id === undefined) return;
    for (let i = 0; i < chunks.length; i += 100) {
      const part = chunks.slice(i, i + 100);
      await this.env.JOB_QUEUE.sendBatch(part.map((chunk) => ({ body: { job: id, chunk } satisfies ChunkMessage, contentType: 'json' as const })));
      const now = Date.now();
      for (const c of part) this.sql.exec('UPDATE chunks SET enqueued_at = ?, attempts = attempts + 1 WHERE chunk = ? AND status = ?', now, c, 'pending');
    }
  }

  // -------------------------------------------------------------------------
  // Work (called by the queue consumer)

  async chunkWork(chunk: number): Promise<ChunkWork> {
    const meta = this.meta();
    if (!meta || meta.status === 'creating' || isFinalJobStatus(meta.status)) return { run: false, tenant: meta?.tenant ?? '', items: [] };
    const rows = this.sql.exec<{ idx: number; input: string }>('SELECT idx, input FROM items WHERE chunk = ? AND status = ? ORDER BY idx', chunk, 'pending').toArray();
    if (rows.length > 0 && meta.status === 'queued') {
      meta.status = 'running';
      this.saveMeta(meta);
    }
    return { run: rows.length > 0, tenant: meta.tenant, items: rows.map((r) => ({ idx: r.idx, input: JSON.parse(r.input) as StoredItemInput })) };
  }

  /** Records outcomes of still-pending items (others are ignored: exactly once). */
  async record(chunk: number, outcomes: ItemOutcome[]): Promise<void> {
    const meta = this.meta();
    if (!meta || isFinalJobStatus(meta.status as JobStatus)) return;
    for (const o of outcomes) {
      if ('result' in o) this.sql.exec('UPDATE items SET status = ?, result = ? WHERE idx = ? AND status = ?', 'succeeded', JSON.stringify(o.result), o.idx, 'pending');
      else this.sql.exec('UPDATE items SET status = ?, error = ? WHERE idx = ? AND status = ?', 'failed', JSON.stringify(o.error), o.idx, 'pending');
    }
    const left = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM items WHERE chunk = ? AND status = ?', chunk, 'pending').one().n;
    if (left === 0) this.sql.exec('UPDATE chunks SET status = ? WHERE chunk = ?', 'done', chunk);
    await this.maybeFinish(meta);
  }

  /** A chunk the queue gave up on (dead-letter queue): its pending items fail with `error`. */
  async failChunk(chunk: number, error: { code: string; message: string; status: number }): Promise<void> {
    const rows = this.sql.exec<{ idx: number }>('SELECT idx FROM items WHERE chunk = ? AND status = ?', chunk, 'pending').toArray();
    await this.record(
      chunk,
      rows.map((r) => ({ idx: r.idx, error })),
    );
  }

  private counts(): { done: number; succeeded: number; failed: number; cancelled: number } {
    const rows = this.sql.exec<{ status: string; n: number }>('SELECT status, COUNT(*) AS n FROM items GROUP BY status').toArray();
    const by = Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
    const succeeded = by.succeeded ?? 0;
    const failed = by.failed ?? 0;
    const cancelled = by.cancelled ?? 0;
    return { done: succeeded + failed + cancelled, succeeded, failed, cancelled };
  }

  private async maybeFinish(meta: JobMeta): Promise<void> {
    const c = this.counts();
    if (c.done < meta.total) {
      this.saveMeta(meta);
      return;
    }
    await this.finish(meta, c.succeeded === 0 && c.cancelled === 0 ? 'failed' : 'completed');
  }

  private async finish(meta: JobMeta, status: 'completed' | 'failed' | 'cancelled'): Promise<void> {
    const now = Date.now();
    const cfg = jobConfig(this.env);
    meta.status = status;
    meta.completed_at = iso(now);
    meta.expires_at = iso(now + cfg.retentionSeconds * 1000);
    if (meta.webhook && status !== 'cancelled') {
      meta.delivery = { webhook_id: `msg_${meta.id.slice(0, 32)}_${status}`, event: status === 'completed' ? 'job.completed' : 'job.failed', attempts: 0, next_at: now, done: false, timestamp: iso(now) };
    }
    this.saveMeta(meta);
    await this.armAlarm(meta);
  }

  // -------------------------------------------------------------------------
  // Reads and commands (routes)

  async get(tenant: string, opts: { items: boolean }): Promise<Job | null> {
    const meta = this.meta();
    if (!meta || meta.tenant !== tenant) return null;
    return this.view(meta, opts);
  }

  async cancel(tenant: string): Promise<{ kind: 'cancelled'; job: Job } | { kind: 'finished'; job: Job } | { kind: 'not_found' }> {
    const meta = this.meta();
    if (!meta || meta.tenant !== tenant) return { kind: 'not_found' };
    if (meta.status !== 'creating' && isFinalJobStatus(meta.status)) return { kind: 'finished', job: this.view(meta, { items: false }) };
    this.sql.exec('UPDATE items SET status = ? WHERE status = ?', 'cancelled', 'pending');
    this.sql.exec('UPDATE chunks SET status = ? WHERE status = ?', 'done', 'pending');
    await this.finish(meta, 'cancelled');
    return { kind: 'cancelled', job: this.view(meta, { items: false }) };
  }

  async deliveries(tenant: string): Promise<WebhookDelivery[] | null> {
    const meta = this.meta();
    if (!meta || meta.tenant !== tenant) return null;
    return this.sql
      .exec<{ webhook_id: string; event: string; attempt: number; at: string; outcome: string; status: number | null; error: string | null; ms: number; next_attempt_at: string | null }>('SELECT * FROM deliveries ORDER BY n')
      .toArray()
      .map((r) => ({
        webhook_id: r.webhook_id,
        event: r.event as WebhookDelivery['event'],
        attempt: r.attempt,
        at: r.at,
        outcome: r.outcome as WebhookDelivery['outcome'],
        ms: r.ms,
        ...(r.status !== null ? { status: r.status } : {}),
        ...(r.error !== null ? { error: r.error } : {}),
        ...(r.next_attempt_at !== null ? { next_attempt_at: r.next_attempt_at } : {}),
      }));
  }

  /** Starts the webhook's deliveries again (same webhook-id). */
  async redeliver(tenant: string): Promise<{ kind: 'ok' | 'not_found' | 'no_webhook' | 'not_finished' }> {
    const meta = this.meta();
    if (!meta || meta.tenant !== tenant) return { kind: 'not_found' };
    if (!meta.webhook) return { kind: 'no_webhook' };
    if (meta.status === 'creating' || !isFinalJobStatus(meta.status) || meta.status === 'cancelled' || !meta.delivery) return { kind: 'not_finished' };
    meta.delivery = { ...meta.delivery, attempts: 0, next_at: Date.now(), done: false };
    this.saveMeta(meta);
    await this.armAlarm(meta);
    return { kind: 'ok' };
  }

  private view(meta: JobMeta, opts: { items: boolean }): Job {
    const c = this.counts();
    const job: Job = {
      id: meta.id,
      object: 'job',
      status: meta.status === 'creating' ? 'queued' : meta.status,
      created_at: meta.created_at,
      updated_at: meta.updated_at,
      ...(meta.completed_at !== undefined ? { completed_at: meta.completed_at } : {}),
      ...(meta.expires_at !== undefined ? { expires_at: meta.expires_at } : {}),
      status_url: meta.status_url,
      progress: { total: meta.total, done: c.done, succeeded: c.succeeded, failed: c.failed },
      ...(meta.metadata !== undefined ? { metadata: meta.metadata } : {}),
      ...(meta.webhook !== undefined ? { webhook: { url: meta.webhook.url } } : {}),
    };
    if (opts.items) {
      job.items = this.sql
        .exec<{ idx: number; client_id: string | null; status: string; result: string | null; error: string | null }>('SELECT idx, client_id, status, result, error FROM items ORDER BY idx')
        .toArray()
        .map(
          (r): JobItem => ({
            index: r.idx,
            ...(r.client_id !== null ? { id: r.client_id } : {}),
            status: r.status as JobItem['status'],
            ...(r.result !== null ? { result: JSON.parse(r.result) as JobItemResult } : {}),
            ...(r.error !== null ? { error: JSON.parse(r.error) as NonNullable<JobItem['error']> } : {}),
          }),
        );
    }
    return job;
  }

  // -------------------------------------------------------------------------
  // The alarm: watchdog, webhook deliveries, expiry

  private async armAlarm(meta: JobMeta): Promise<void> {
    const cfg = jobConfig(this.env);
    const times: number[] = [];
    if (meta.status === 'creating' || !isFinalJobStatus(meta.status)) times.push(Date.now() + (cfg.stallSeconds * 1000) / 2);
    if (meta.delivery && !meta.delivery.done) times.push(meta.delivery.next_at);
    if (meta.expires_at !== undefined) times.push(Date.parse(meta.expires_at));
    if (times.length > 0) await this.ctx.storage.setAlarm(Math.min(...times));
  }

  override async alarm(): Promise<void> {
    const meta = this.meta();
    if (!meta) return;
    const now = Date.now();
    if (meta.expires_at !== undefined && now >= Date.parse(meta.expires_at)) {
      await this.expire(meta);
      return;
    }
    if (meta.status === 'creating' || !isFinalJobStatus(meta.status)) await this.watchdog(meta, now);
    if (meta.delivery && !meta.delivery.done && now >= meta.delivery.next_at) await this.deliver(meta);
    const fresh = this.meta();
    if (fresh) await this.armAlarm(fresh);
  }

  private async watchdog(meta: JobMeta, now: number): Promise<void> {
    const stallMs = jobConfig(this.env).stallSeconds * 1000;
    const stalled = this.sql
      .exec<{ chunk: number }>('SELECT chunk FROM chunks WHERE status = ? AND (enqueued_at IS NULL OR enqueued_at < ?)', 'pending', now - stallMs)
      .toArray()
      .map((r) => r.chunk);
    if (stalled.length === 0) return;
    console.log(JSON.stringify({ level: 'warn', event: 'job_chunks_requeued', job: meta.id, chunks: stalled.length }));
    if (meta.status === 'creating') {
      meta.status = 'queued';
      this.saveMeta(meta);
    }
    try {
      await this.enqueue(stalled);
    } catch (err) {
      console.error(JSON.stringify({ level: 'error', event: 'job_enqueue_failed', job: meta.id, message: String(err) }));
    }
  }

  private async deliver(meta: JobMeta): Promise<void> {
    const d = meta.delivery!;
    const webhook = meta.webhook!;
    const cfg = jobConfig(this.env);
    const body = JSON.stringify({ type: d.event, timestamp: d.timestamp, data: this.view(meta, { items: true }) });
    const out = await deliverWebhook(webhook, { id: d.webhook_id, type: d.event, body }, { timeoutMs: cfg.webhookTimeoutMs, allowInsecureLoopback: cfg.allowInsecureLoopbackWebhooks });
    d.attempts += 1;
    let next: number | null = null;
    if (out.outcome === 'retry') {
      const delay = nextDelaySeconds(retrySchedule(this.env), d.attempts, out.retryAfterSeconds);
      if (delay !== null) next = Date.now() + delay * 1000;
    }
    if (next === null) d.done = true;
    else d.next_at = next;
    this.sql.exec(
      'INSERT INTO deliveries (webhook_id, event, attempt, at, outcome, status, error, ms, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      d.webhook_id,
      d.event,
      d.attempts,
      iso(Date.now()),
      out.outcome,
      out.status ?? null,
      out.error ?? null,
      out.ms,
      next !== null ? iso(next) : null,
    );
    this.saveMeta(meta);
  }

  private async expire(meta: JobMeta): Promise<void> {
    // Inline images of this job live under jobs/<id>/ in R2.
    let cursor: string | undefined;
    do {
      const page = await this.env.JOB_BLOBS.list({ prefix: `jobs/${meta.id}/`, ...(cursor !== undefined ? { cursor } : {}) });
      if (page.objects.length > 0) await this.env.JOB_BLOBS.delete(page.objects.map((o) => o.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor !== undefined);
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }
}
