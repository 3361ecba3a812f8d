import { normalize } from '../src/format';
import { lanesTable, recentTable, sessionsTable, spendTable } from '../src/tables';

describe('panel tables', () => {
  const s = normalize({
    by_model: [
      { route: 'local', backend: 'vllm', model: 'smol', calls: 10, tokens: 20000, cost_usd: 0.002, gpu_hours: 0.01, utilisation: 0.4 }
    ],
    lanes: [{ route: 'reason', backend: 'openai', calls: 30, calls_per_min: 6, latency_p50_s: 0.25, latency_p95_s: 1.5, window_s: 300 }],
    sessions: [
      { session: 'kernel-abc', notebook: 'work/a.ipynb', running: true, calls: 3, cost_usd: 0.1 },
      { session: 'a-very-long-session-id-from-a-cli-run', notebook: '', running: false }
    ],
    recent: [{ ts: 0, route: 'reason', model: 'm', status: 'ok', input_tokens: 5, output_tokens: 5, cost_usd: 0.001, latency_s: 0.5 }]
  });

  it('has one cell per header in every row', () => {
    for (const t of [spendTable(s), lanesTable(s), sessionsTable(s), recentTable(s)]) {
      expect(t.rows.length).toBeGreaterThan(0);
      for (const r of t.rows) {
        expect(r.length).toBe(t.headers.length);
      }
    }
  });

  it('formats the cells', () => {
    expect(spendTable(s).rows[0]).toEqual(['local', 'vllm', 'smol', '10', '0', '20.0K', '$0.0020', '$0.0000', '0.010', '40%']);
    expect(lanesTable(s).title).toBe('Lanes, last 5 min');
    expect(lanesTable(s).rows[0].slice(2, 5)).toEqual(['6.0', '250 ms', '1.50 s']);
    expect(sessionsTable(s).rows.map(r => r.slice(0, 2))).toEqual([
      ['●', 'a.ipynb'],
      ['○', 'a-very-long-session-id-f…']
    ]);
    expect(recentTable(s).rows[0][0]).toBe('–');
  });

  it('is empty, not broken, without data', () => {
    const e = normalize(null);
    expect(spendTable(e).rows).toEqual([]);
    expect(lanesTable(e).empty).toMatch(/Idle/);
  });
});
