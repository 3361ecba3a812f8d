/**
 * The operator panel's tables as plain strings (pure, unit-tested); the panel
 * only turns them into DOM.
 */
import { ISummary, formatCount, formatPct, formatSeconds } from './format';

export interface ITable {
  title: string;
  headers: string[];
  rows: string[][];
  empty: string;
}

/** The report's table, cell for cell as the server rendered it (the exported cell shows the same). */
export function spendTable(s: ISummary): ITable {
  const d = s.report.display;
  return {
    title: `Spend by route / backend / model — ${d.scope || 'all time'}`,
    headers: d.header,
    rows: d.rows.length ? [...d.rows, d.total_row] : [],
    empty: 'No calls yet.'
  };
}

export function lanesTable(s: ISummary): ITable {
  const window = s.lanes.length ? Math.round(s.lanes[0].window_s / 60) : 5;
  return {
    title: `Lanes, last ${window} min`,
    headers: ['route', 'backend', 'calls/min', 'p50', 'p95', 'errors', 'hits', 'util'],
    rows: s.lanes.map(l => [
      l.route,
      l.backend,
      l.calls_per_min.toFixed(1),
      formatSeconds(l.latency_p50_s),
      formatSeconds(l.latency_p95_s),
      String(l.errors),
      String(l.cache_hits),
      formatPct(l.utilisation)
    ]),
    empty: 'Idle: no calls in the window.'
  };
}

function shortName(path: string, session: string): string {
  if (path) {
    const parts = path.split('/');
    return parts[parts.length - 1] || path;
  }
  return session.length > 24 ? session.slice(0, 24) + '…' : session;
}

export function sessionsTable(s: ISummary): ITable {
  return {
    title: 'Kernels',
    headers: ['', 'notebook / session', 'calls', 'tokens', 'cost'],
    rows: s.sessions.map(r => [
      r.running ? '●' : '○',
      shortName(r.notebook, r.session),
      String(r.calls),
      formatCount(r.tokens),
      r.cost
    ]),
    empty: 'No kernel has spent anything yet.'
  };
}

function clock(ts: number): string {
  if (!ts) {
    return '–';
  }
  const d = new Date(ts * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function recentTable(s: ISummary): ITable {
  return {
    title: 'Recent calls',
    headers: ['time', 'route', 'model', 'status', 'tokens', 'cost', 'latency'],
    rows: s.recent.map(r => [
      clock(r.ts),
      r.route,
      r.model,
      r.kind === 'call' || r.kind === 'compute' ? r.status : r.kind, // 'setup': a model load, not a call
      formatCount(r.input_tokens + r.output_tokens),
      r.cost,
      formatSeconds(r.latency_s)
    ]),
    empty: 'No calls yet.'
  };
}
