import { normalize } from '../src/format';
import { lanesTable, recentTable, sessionsTable, spendTable } from '../src/tables';

describe('panel tables', () => {
  const s = normalize({
    report: {
      display: {
        scope: 'this notebook (a.ipynb)',
        header: ['route', 'backend', 'model', 'cost'],
        rows: [['local', 'vllm', 'smol', '$0.0020']],
        total_row: ['total', '', '', '$0.0020']
      }
    },
    lanes: [{ route: 'reason', backend: 'openai', calls: 30, calls_per_min: 6, latency_p50_s: 0.25, latency_p95_s: 1.5, window_s: 300 }],
    sessions: [
      { session: 'k-abc', notebook: 'work/a.ipynb', running: true, calls: 3, cost_usd: 0.1, cost: '$0.1000' },
      { session: 'a-very-long-session-id-from-a-cli-run', notebook: '', running: false }
    ],
    recent: [{ ts: 0, route: 'reason', model: 'm', status: 'ok', input_tokens: 5, output_tokens: 5, cost: '$0.0010', latency_s: 0.5 }]
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
    expect(spendTable(s).rows).toEqual([['local', 'vllm', 'smol', '$0.0020'], ['total', '', '', '$0.0020']]);
    expect(spendTable(s).title).toContain('this notebook (a.ipynb)');
    expect(sessionsTable(s).rows[0][4]).toBe('$0.1000'); // the server's string
    expect(recentTable(s).rows[0][5]).toBe('$0.0010');
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
