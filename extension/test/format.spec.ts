import {
  budgetClass,
  budgetLine,
  formatCount,
  formatUsd,
  normalize,
  statusText,
  statusTitle,
  summaryQuery
} from '../src/format';

const good = {
  version: 1,
  generated_at: 1700000000,
  home: '/h',
  note: '',
  totals: { calls: 4, cache_hits: 1, input_tokens: 1000, output_tokens: 500, cost_usd: 0.5123, saved_usd: 0.01 },
  today: { calls: 3, cost_usd: 0.0421, tokens: 900 },
  current: { calls: 2, cost_usd: 0.0123, today: { cost_usd: 0.0123 }, by_model: [], kernel: 'k1' },
  budget: { state: 'warn', limit_usd: 0.6, spent_usd: 0.5123, remaining_usd: 0.0877, fraction: 0.85 },
  by_model: [{ route: 'reason', backend: 'openai', model: 'gpt-5', calls: 4, cost_usd: 0.5 }],
  advice: [{ kind: 'dont_reason_twice', title: "Don't reason twice", message: 'x', severity: 'warn' }, 'plain'],
  markdown: '### hybridnb'
};

describe('normalize', () => {
  it('keeps the numbers of a good answer', () => {
    const s = normalize(good);
    expect(s.totals.tokens).toBe(1500);
    expect(s.totals.cost_usd).toBeCloseTo(0.5123);
    expect(s.today.tokens).toBe(900);
    expect(s.current?.kernel).toBe('k1');
    expect(s.current?.today.cost_usd).toBeCloseTo(0.0123);
    expect(s.budget.state).toBe('warn');
    expect(s.byModel[0].model).toBe('gpt-5');
    expect(s.advice.map(a => a.message)).toEqual(['x', 'plain']);
    expect(s.advice[0].severity).toBe('warn');
  });

  it.each([undefined, null, 42, 'garbage', [], { totals: 'x', by_model: {}, budget: { state: 'lol' } }])(
    'gives a complete empty state for %p',
    raw => {
      const s = normalize(raw);
      expect(s.totals.calls).toBe(0);
      expect(s.totals.cost_usd).toBe(0);
      expect(s.byModel).toEqual([]);
      expect(s.current).toBeNull();
      expect(s.budget.state).toBe('none');
      expect(statusText(s)).toBe('hybridnb today $0.0000');
      expect(() => statusTitle(s)).not.toThrow();
    }
  );

  it('replaces non-finite and wrongly typed numbers', () => {
    const s = normalize({ totals: { cost_usd: 'NaN', calls: '7', tokens: Infinity, utilisation: 'x' } });
    expect(s.totals.cost_usd).toBe(0);
    expect(s.totals.calls).toBe(7);
    expect(s.totals.tokens).toBe(0);
    expect(s.totals.utilisation).toBeNull();
  });

  it('drops malformed rows to defaults instead of throwing', () => {
    const s = normalize({ by_model: [null, 3, { route: 1 }], recent: ['x'], lanes: [{}] });
    expect(s.byModel.map(r => r.route)).toEqual(['', '', '1']);
    expect(s.recent[0].cost_usd).toBe(0);
    expect(s.lanes[0].latency_p50_s).toBeNull();
  });
});

describe('formatting', () => {
  it('shows sub-cent spend', () => {
    expect(formatUsd(0.0000123)).toBe('$0.000012');
    expect(formatUsd(0.0123)).toBe('$0.0123');
    expect(formatUsd(0)).toBe('$0.0000');
    expect(formatUsd(12.5)).toBe('$12.50');
    expect(formatUsd(12345.6)).toBe('$12,346');
    expect(formatUsd(-1.5)).toBe('-$1.50');
    expect(formatUsd(undefined)).toBe('–');
  });

  it('shortens token counts', () => {
    expect(formatCount(950)).toBe('950');
    expect(formatCount(12345)).toBe('12.3K');
    expect(formatCount(4_500_000)).toBe('4.5M');
    expect(formatCount('x')).toBe('–');
  });

  it('puts the current notebook and today in the status text', () => {
    expect(statusText(normalize(good))).toBe('hybridnb $0.0123 · today $0.0421');
    expect(statusTitle(normalize(good))).toContain('85%');
  });

  it('describes the budget', () => {
    const s = normalize(good);
    expect(budgetLine(s.budget)).toBe('Budget: $0.5123 of $0.6000 (85%), $0.0877 left');
    expect(budgetLine(normalize({}).budget)).toContain('No budget set');
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
