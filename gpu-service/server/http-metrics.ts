// HTTP request metrics of the scoring server in Prometheus text format:
// imagereward_http_requests_total{method,route,status} and
// imagereward_http_request_duration_seconds{method,route} (histogram).
// Kept here rather than in the service's registry so the HTTP layer depends
// only on `service.metrics.render()`.

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

function labels(pairs: Record<string, string>): string {
  const body = Object.entries(pairs)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
  return `{${body}}`;
}

interface Histogram {
  counts: number[]; // per bucket (non-cumulative), plus +Inf at the end
  sum: number;
  count: number;
}

export class HttpMetrics {
  private readonly requests = new Map<string, { method: string; route: string; status: string; n: number }>();
  private readonly durations = new Map<string, { method: string; route: string; h: Histogram }>();
  private inFlight = 0;

  start(): void {
    this.inFlight++;
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    const rk = `${method} ${route} ${status}`;
    const r = this.requests.get(rk) ?? { method, route, status: String(status), n: 0 };
    r.n++;
    this.requests.set(rk, r);
    const dk = `${method} ${route}`;
    let d = this.durations.get(dk);
    if (!d) {
      d = { method, route, h: { counts: new Array<number>(BUCKETS.length + 1).fill(0), sum: 0, count: 0 } };
      this.durations.set(dk, d);
    }
    let i = BUCKETS.findIndex((b) => seconds <= b);
    if (i === -1) i = BUCKETS.length;
    d.h.counts[i] = (d.h.counts[i] ?? 0) + 1;
    d.h.sum += seconds;
    d.h.count++;
  }

  render(): string {
    const out: string[] = [];
    out.push('# HELP imagereward_http_requests_total HTTP requests answered, by route and status.');
    out.push('# TYPE imagereward_http_requests_total counter');
    for (const r of this.requests.values()) out.push(`imagereward_http_requests_total${labels({ method: r.method, route: r.route, status: r.status })} ${r.n}`);
    out.push('# HELP imagereward_http_request_duration_seconds Time from request to response, by route.');
    out.push('# TYPE imagereward_http_request_duration_seconds histogram');
    for (const d of this.durations.values()) {
      let cum = 0;
      BUCKETS.forEach((b, i) => {
        cum += d.h.counts[i] ?? 0;
        out.push(`imagereward_http_request_duration_seconds_bucket${labels({ method: d.method, route: d.route, le: String(b) })} ${cum}`);
      });
      out.push(`imagereward_http_request_duration_seconds_bucket${labels({ method: d.method, route: d.route, le: '+Inf' })} ${d.h.count}`);
      out.push(`imagereward_http_request_duration_seconds_sum${labels({ method: d.method, route: d.route })} ${d.h.sum}`);
      out.push(`imagereward_http_request_duration_seconds_count${labels({ method: d.method, route: d.route })} ${d.h.count}`);
    }
    out.push('# HELP imagereward_http_requests_in_flight HTTP requests being served now.');
    out.push('# TYPE imagereward_http_requests_in_flight gauge');
    out.push(`imagereward_http_requests_in_flight ${this.inFlight}`);
    return `${out.join('\n')}\n`;
  }
}
