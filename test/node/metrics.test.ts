import { describe, expect, it } from 'vitest';
import { MetricsRegistry, formatValue } from '../../gpu-service/service/metrics.js';

describe('MetricsRegistry (Prometheus text format 0.0.4)', () => {
  it('renders counters with HELP/TYPE, labels and escaping', () => {
    const r = new MetricsRegistry();
    const c = r.counter('app_errors_total', 'Errors by code.\nSecond line with \\ backslash', ['code']);
    c.inc({ code: 'image_decode_failed' });
    c.inc({ code: 'image_decode_failed' }, 2);
    c.inc({ code: 'a"b\\c\nd' });
    expect(c.get({ code: 'image_decode_failed' })).toBe(3);
    expect(r.render()).toBe(
      '# HELP app_errors_total Errors by code.\\nSecond line with \\\\ backslash\n' +
        '# TYPE app_errors_total counter\n' +
        'app_errors_total{code="image_decode_failed"} 3\n' +
        'app_errors_total{code="a\\"b\\\\c\\nd"} 1\n',
    );
  });

  it('renders gauges (set, inc, dec, collected at render time) and unlabelled zero values', () => {
    const r = new MetricsRegistry();
    const g = r.gauge('queue_depth', 'Depth.');
    g.set(5);
    g.dec();
    g.inc(undefined, 3);
    let live = 2;
    r.gauge('live_value', 'Read at render.').collect(() => live);
    r.counter('nothing_total', 'Never incremented.');
    live = 9;
    const text = r.render();
    expect(text).toContain('# TYPE queue_depth gauge\nqueue_depth 7\n');
    expect(text).toContain('live_value 9\n');
    expect(text).toContain('# TYPE nothing_total counter\nnothing_total 0\n');
  });

  it('renders histograms with cumulative buckets, +Inf, _sum and _count per label set', () => {
    const r = new MetricsRegistry();
    const h = r.histogram('stage_seconds', 'Stage latency.', ['stage'], [0.1, 1, 10]);
    for (const v of [0.05, 0.1, 0.5, 2, 100]) h.observe(v, { stage: 'queue' });
    h.observe(0.2, { stage: 'inference' });
    expect(r.render()).toBe(
      [
        '# HELP stage_seconds Stage latency.',
        '# TYPE stage_seconds histogram',
        'stage_seconds_bucket{stage="queue",le="0.1"} 2',
        'stage_seconds_bucket{stage="queue",le="1"} 3',
        'stage_seconds_bucket{stage="queue",le="10"} 4',
        'stage_seconds_bucket{stage="queue",le="+Inf"} 5',
        'stage_seconds_sum{stage="queue"} 102.65',
        'stage_seconds_count{stage="queue"} 5',
        'stage_seconds_bucket{stage="inference",le="0.1"} 0',
        'stage_seconds_bucket{stage="inference",le="1"} 1',
        'stage_seconds_bucket{stage="inference",le="10"} 1',
        'stage_seconds_bucket{stage="inference",le="+Inf"} 1',
        'stage_seconds_sum{stage="inference"} 0.2',
        'stage_seconds_count{stage="inference"} 1',
        '',
      ].join('\n'),
    );
    expect(h.get({ stage: 'queue' })).toMatchObject({ count: 5 });
  });

  it('every line of a rendered registry parses as the exposition format', () => {
    const r = new MetricsRegistry();
    r.counter('a_total', 'A.', ['x']).inc({ x: '1' });
    r.gauge('b', 'B.', ['y', 'z']).set(-1.5, { y: 'p', z: 'q' });
    r.histogram('c_seconds', 'C.').observe(0.003);
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/;
    const lines = r.render().trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(10);
    for (const l of lines) {
      if (l.startsWith('# HELP ') || l.startsWith('# TYPE ')) continue;
      expect(l).toMatch(sample);
    }
  });

  it('rejects bad names, unknown or missing labels, decreasing counters and conflicting registrations', () => {
    const r = new MetricsRegistry();
    expect(() => r.counter('bad-name', 'x')).toThrow(TypeError);
    expect(() => r.counter('ok_total', 'x', ['__reserved'])).toThrow(TypeError);
    const c = r.counter('ok_total', 'x', ['a']);
    expect(() => c.inc({ b: '1' })).toThrow(/unknown label/);
    expect(() => c.inc({})).toThrow(/missing label/);
    expect(() => c.inc({ a: '1' }, -1)).toThrow(RangeError);
    expect(r.counter('ok_total', 'x', ['a'])).toBe(c);
    expect(() => r.gauge('ok_total', 'x', ['a'])).toThrow(/already registered/);
    expect(() => r.histogram('h', 'x', ['le'])).toThrow(/reserved/);
    expect(() => r.histogram('h2', 'x', [], [1, 0.5])).toThrow(RangeError);
    expect(formatValue(Infinity)).toBe('+Inf');
    expect(formatValue(-Infinity)).toBe('-Inf');
    expect(formatValue(NaN)).toBe('NaN');
  });
});
