// A tiny Prometheus registry of our own: counters, gauges and histograms with
// labels, rendered in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// The scoring service records its metrics here (score-service.ts); the HTTP
// layer may register its own in the same registry, so one `render()` serves
// /metrics.

export type Labels = Readonly<Record<string, string | number>>;

/** Content-Type of `render()`'s output. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Default latency buckets, in seconds. */
export const DEFAULT_SECONDS_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value as the format writes it (+Inf, -Inf, NaN; integers without a fraction). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class Metric {
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!NAME_RE.test(name)) throw new TypeError(`invalid metric name "${name}"`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l.startsWith('__')) throw new TypeError(`invalid label name "${l}" on ${name}`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new TypeError(`duplicate label names on ${name}`);
  }

  /** The label values in labelNames order; throws on a missing or unknown label. */
  protected values(labels: Labels | undefined): string[] {
    const given = labels ?? {};
    for (const k of Object.keys(given)) if (!this.labelNames.includes(k)) throw new TypeError(`unknown label "${k}" on ${this.name}`);
    return this.labelNames.map((n) => {
      const v = given[n];
      if (v === undefined) throw new TypeError(`missing label "${n}" on ${this.name}`);
      return String(v);
    });
  }

  protected key(values: readonly string[]): string {
    return JSON.stringify(values);
  }

  header(): string {
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
  }

  abstract samples(): string;
}

export class Counter extends Metric {
  readonly type = 'counter' as const;
  private readonly series = new Map<string, { values: string[]; v: number }>();
  private collector: (() => number) | undefined;

  /** An unlabelled counter whose value is read at render time (a count kept elsewhere). */
  collect(fn: () => number): this {
    if (this.labelNames.length) throw new TypeError(`collect() needs an unlabelled counter (${this.name})`);
    this.collector = fn;
    return this;
  }

  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) throw new RangeError(`a counter only goes up (got ${by}) on ${this.name}`);
    const values = this.values(labels);
    const k = this.key(values);
    const s = this.series.get(k);
    if (s) s.v += by;
    else this.series.set(k, { values, v: by });
  }

  get(labels?: Labels): number {
    if (this.collector && this.labelNames.length === 0) return this.collector();
    return this.series.get(this.key(this.values(labels)))?.v ?? 0;
  }

  samples(): string {
    let out = '';
    if (this.collector) return `${this.name} ${formatValue(this.collector())}\n`;
    if (this.series.size === 0 && this.labelNames.length === 0) return `${this.name} 0\n`;
    for (const s of this.series.values()) out += `${this.name}${labelText(this.labelNames, s.values)} ${formatValue(s.v)}\n`;
    return out;
  }
}

export class Gauge extends Metric {
  readonly type = 'gauge' as const;
  private readonly series = new Map<string, { values: string[]; v: number }>();
  private collector: (() => number) | undefined;

  set(value: number, labels?: Labels): void {
    const values = this.values(labels);
    const k = this.key(values);
    const s = this.series.get(k);
    if (s) s.v = value;
    else this.series.set(k, { values, v: value });
  }

  inc(labels?: Labels, by = 1): void {
    this.set(this.get(labels) + by, labels);
  }

  dec(labels?: Labels, by = 1): void {
    this.set(this.get(labels) - by, labels);
  }

  get(labels?: Labels): number {
    if (this.collector && this.labelNames.length === 0) return this.collector();
    return this.series.get(this.key(this.values(labels)))?.v ?? 0;
  }

  /** An unlabelled gauge whose value is read at render time. */
  collect(fn: () => number): this {
    if (this.labelNames.length) throw new TypeError(`collect() needs an unlabelled gauge (${this.name})`);
    this.collector = fn;
    return this;
  }

  samples(): string {
    if (this.collector) return `${this.name} ${formatValue(this.collector())}\n`;
    if (this.series.size === 0 && this.labelNames.length === 0) return `${this.name} 0\n`;
    let out = '';
    for (const s of this.series.values()) out += `${this.name}${labelText(this.labelNames, s.values)} ${formatValue(s.v)}\n`;
    return out;
  }
}

interface HistogramSeries {
  values: string[];
  /** Non-cumulative counts per bucket; the last one is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[] = DEFAULT_SECONDS_BUCKETS) {
    super(name, help, labelNames);
    if (labelNames.includes('le')) throw new TypeError(`"le" is reserved for histogram buckets (${name})`);
    const b = [...buckets].filter((x) => x !== Infinity);
    for (let i = 0; i < b.length; i++) {
      if (!Number.isFinite(b[i] as number)) throw new RangeError(`bucket bounds must be finite numbers (${name})`);
      if (i > 0 && (b[i] as number) <= (b[i - 1] as number)) throw new RangeError(`bucket bounds must increase (${name})`);
    }
    this.buckets = b;
  }

  observe(value: number, labels?: Labels): void {
    const values = this.values(labels);
    const k = this.key(values);
    let s = this.series.get(k);
    if (!s) {
      s = { values, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    let i = this.buckets.findIndex((b) => value <= b);
    if (i < 0) i = this.buckets.length;
    s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += value;
    s.count++;
  }

  /** Count and sum of one series (tests, diagnostics). */
  get(labels?: Labels): { count: number; sum: number; buckets: { le: number; count: number }[] } {
    const s = this.series.get(this.key(this.values(labels)));
    let acc = 0;
    const buckets = [...this.buckets, Infinity].map((le, i) => ({ le, count: (acc += s?.counts[i] ?? 0) }));
    return { count: s?.count ?? 0, sum: s?.sum ?? 0, buckets };
  }

  samples(): string {
    let out = '';
    const emit = (s: HistogramSeries): void => {
      let acc = 0;
      [...this.buckets, Infinity].forEach((le, i) => {
        acc += s.counts[i] ?? 0;
        out += `${this.name}_bucket${labelText(this.labelNames, s.values, ['le', formatValue(le)])} ${acc}\n`;
      });
      const l = labelText(this.labelNames, s.values);
      out += `${this.name}_sum${l} ${formatValue(s.sum)}\n${this.name}_count${l} ${s.count}\n`;
    };
    if (this.series.size === 0 && this.labelNames.length === 0) {
      emit({ values: [], counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 });
    }
    for (const s of this.series.values()) emit(s);
    return out;
  }
}

/** A set of metrics rendered together. Registering a name twice returns the existing metric when it is of the same kind and labels. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(name, 'counter', labelNames, () => new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(name, 'gauge', labelNames, () => new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    return this.register(name, 'histogram', labelNames, () => new Histogram(name, help, labelNames, buckets));
  }

  /** A registered metric by name. */
  get(name: string): Counter | Gauge | Histogram | undefined {
    return this.metrics.get(name) as Counter | Gauge | Histogram | undefined;
  }

  /** Every metric in the text exposition format 0.0.4 (registration order). */
  render(): string {
    let out = '';
    for (const m of this.metrics.values()) out += m.header() + m.samples();
    return out;
  }

  readonly contentType = PROMETHEUS_CONTENT_TYPE;

  private register<T extends Metric>(name: string, type: Metric['type'], labelNames: readonly string[], make: () => T): T {
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.type !== type || existing.labelNames.join() !== labelNames.join()) {
        throw new TypeError(`metric ${name} is already registered as a ${existing.type} with labels [${existing.labelNames.join(', ')}]`);
      }
      return existing as T;
    }
    const m = make();
    this.metrics.set(name, m);
    return m;
  }
}

/** What ScoreService.metrics is. */
export type Metrics = MetricsRegistry;
