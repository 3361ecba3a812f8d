import {
  budgetClass,
  budgetLine,
  formatCount,
  normalize,
  statusText,
  statusTitle,
  summaryQuery
} from '../src/format';

const good = {
  version: 2,
  generated_at: 1700000000,
  home: '/h',
  note: '',
  report: {
    scope: { per: 'notebook', label: 'this notebook (a.ipynb)' },
    totals: { calls: 4, cache_hits: 1, input_tokens: 1000, output_tokens: 500, cost_usd: 0.5123, saved_usd: 0.01 },
    budget: {
      state: 'warn', per: 'session', label: 'session budget', limit_usd: 0.6, spent_usd: 0.5123, fraction: 0.85,
      line: 'session budget: $0.5123 of $0.6000 spent (85%), $0.0877 left'
    },
    advice: [{ kind: 'dont_reason_twice', title: "Don't reason twice", message: 'x', severity: 'warn' }, 'plain'],
    display: {
      scope: 'this notebook (a.ipynb)', cost: '$0.5123', saved: '$0.0100', calls: '4', cache_hits: '1',
      utilisation: '–', gpu_hours: '–', budget: 'session budget: $0.5123 of $0.6000 spent (85%), $0.0877 left',
      totals_line: 'this notebook (a.ipynb): $0.5123 over 4 calls · 1 cache hits saved $0.0100',
      header: ['route', 'cost'], rows: [['reason', '$0.5123']], total_row: ['total', '$0.5123']
    }
  },
  today: { calls: 3, cost_usd: 0.0421, tokens: 900, cost: '$0.0421' },
  markdown: '### hybridnb'
};

describe('normalize', () => {
  it('keeps the numbers and the strings of a good answer', () => {
    const s = normalize(good);
    expect(s.report.totals.tokens).toBe(1500);
    expect(s.report.totals.cost_usd).toBeCloseTo(0.5123);
    expect(s.today.tokens).toBe(900);
    expect(s.today.cost).toBe('$0.0421');
    expect(s.report.per).toBe('notebook');
    expect(s.report.budget.state).toBe('warn');
    expect(s.report.budget.label).toBe('session budget');
    expect(s.report.display.rows).toEqual([['reason', '$0.5123']]);
    expect(s.report.advice.map(a => a.message)).toEqual(['x', 'plain']);
    expect(s.report.advice[0].severity).toBe('warn');
  });

  it.each([undefined, null, 42, 'garbage', [], { report: { totals: 'x', display: { rows: {} }, budget: { state: 'lol' } } }])(
    'gives a complete empty state for %p',
    raw => {
      const s = normalize(raw);
      expect(s.report.totals.calls).toBe(0);
      expect(s.report.totals.cost_usd).toBe(0);
      expect(s.report.display.rows).toEqual([]);
      expect(s.report.budget.state).toBe('none');
      expect(statusText(s)).toBe('hybridnb – · no budget');
      expect(() => statusTitle(s)).not.toThrow();
    }
  );

  it('replaces non-finite and wrongly typed numbers', () => {
    const s = normalize({ report: { totals: { cost_usd: 'NaN', calls: '7', tokens: Infinity, utilisation: 'x' } } });
    expect(s.report.totals.cost_usd).toBe(0);
    expect(s.report.totals.calls).toBe(7);
    expect(s.report.totals.tokens).toBe(0);
    expect(s.report.totals.utilisation).toBeNull();
  });

  it('drops malformed rows to defaults instead of throwing', () => {
    const s = normalize({ report: { display: { rows: [null, 3, ['a', 1]] } }, recent: ['x'], lanes: [{}] });
    expect(s.report.display.rows).toEqual([[], [], ['a', '1']]);
    expect(s.recent[0].cost).toBe('–');
    expect(s.lanes[0].latency_p50_s).toBeNull();
  });
});

describe('formatting', () => {
  it('shortens token counts', () => {
    expect(formatCount(950)).toBe('950');
    expect(formatCount(12345)).toBe('12.3K');
    expect(formatCount(4_500_000)).toBe('4.5M');
    expect(formatCount('x')).toBe('–');
  });

  it('puts the current notebook and today in the status text', () => {
    expect(statusText(normalize(good))).toBe('hybridnb $0.5123 · 85% of session budget');
    expect(statusTitle(normalize(good))).toContain('session budget: $0.5123 of $0.6000 spent (85%), $0.0877 left');
    expect(statusTitle(normalize(good))).toContain('Today, all kernels: $0.0421 over 3 calls');
  });

  it('describes the budget', () => {
    const s = normalize(good);
    expect(budgetLine(s.report.budget)).toBe(good.report.budget.line); // the server's words, unchanged
    expect(budgetLine(normalize({}).report.budget)).toBe('no budget set');
    expect(budgetClass('over')).toBe('jp-hybridnb-budget-over');
  });

  it('builds the query for the active notebook', () => {
    expect(summaryQuery({})).toBe('');
    expect(summaryQuery({ kernel: 'a b', notebook: 'dir/x&y.ipynb' })).toBe(
      '?kernel=a%20b&notebook=dir%2Fx%26y.ipynb'
    );
    expect(summaryQuery({ kernel: 'k' }, true)).toBe('?kernel=k&fresh=1');
  });
});
