/**
 * Pure state and formatting logic: no JupyterLab imports, unit-tested with jest.
 *
 * `normalize` turns whatever the server answered (or failed to answer) into a
 * complete `ISummary`, so the widgets never see `undefined` where a number or
 * list belongs and never throw on bad data.
 */

export type BudgetState = 'none' | 'ok' | 'warn' | 'over';

export interface ITotals {
  calls: number;
  cache_hits: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  tokens: number;
  cost_usd: number;
  saved_usd: number;
  gpu_hours: number;
  held_s: number;
  busy_s: number;
  utilisation: number | null;
  /** the amount as the server's one money formatter wrote it (hybridnb.spend.render.money) */
  cost: string;
}

/** The budget with its basis, exactly as every other view shows it. */
export interface IBudget {
  state: BudgetState;
  per: string;
  label: string;
  line: string;
  limit_usd: number | null;
  spent_usd: number;
  fraction: number | null;
}

/** The strings the server rendered for the report (no money is formatted in the front end). */
export interface IDisplay {
  scope: string;
  cost: string;
  saved: string;
  calls: string;
  cache_hits: string;
  utilisation: string;
  gpu_hours: string;
  budget: string;
  totals_line: string;
  header: string[];
  rows: string[][];
  total_row: string[];
}

/** The one SpendReport of the active notebook (hybridnb.spend.report). */
export interface IReport {
  per: string;
  scopeLabel: string;
  totals: ITotals;
  budget: IBudget;
  advice: IAdvice[];
  display: IDisplay;
}

export interface ISessionRow extends ITotals {
  session: string;
  notebook: string;
  kernel: string | null;
  running: boolean;
}

export interface ILane {
  route: string;
  backend: string;
  calls: number;
  errors: number;
  cache_hits: number;
  calls_per_min: number;
  latency_p50_s: number | null;
  latency_p95_s: number | null;
  utilisation: number | null;
  window_s: number;
}

export interface IRecent {
  ts: number;
  route: string;
  backend: string;
  model: string;
  status: string;
  kind: string;
  input_tokens: number;
  output_tokens: number;
  cost: string;
  latency_s: number;
  notebook: string;
  session: string;
}

export interface IAdvice {
  kind: string;
  title: string;
  message: string;
  severity: string;
}

export interface ISummary {
  version: number;
  generatedAt: number;
  home: string;
  note: string;
  report: IReport;
  today: ITotals;
  all: ITotals;
  sessions: ISessionRow[];
  lanes: ILane[];
  recent: IRecent[];
  markdown: string;
}

type Raw = { [key: string]: unknown };

function obj(v: unknown): Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : {};
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** A finite number, else `fallback`. */
export function num(v: unknown, fallback = 0): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number.isFinite(num(v, NaN)) ? num(v) : null;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v);
}

function strings(v: unknown): string[] {
  return list(v).map(str);
}

export function totals(v: unknown): ITotals {
  const o = obj(v);
  const input = num(o.input_tokens);
  const output = num(o.output_tokens);
  return {
    calls: num(o.calls),
    cache_hits: num(o.cache_hits),
    errors: num(o.errors),
    input_tokens: input,
    output_tokens: output,
    tokens: num(o.tokens, input + output),
    cost_usd: num(o.cost_usd),
    saved_usd: num(o.saved_usd),
    gpu_hours: num(o.gpu_hours),
    held_s: num(o.held_s),
    busy_s: num(o.busy_s),
    utilisation: numOrNull(o.utilisation),
    cost: str(o.cost) || '–'
  };
}

const STATES: BudgetState[] = ['none', 'ok', 'warn', 'over'];

export function budget(v: unknown): IBudget {
  const o = obj(v);
  const state = STATES.includes(o.state as BudgetState) ? (o.state as BudgetState) : 'none';
  return {
    state,
    per: str(o.per),
    label: str(o.label) || 'budget',
    line: str(o.line) || 'no budget set',
    limit_usd: numOrNull(o.limit_usd),
    spent_usd: num(o.spent_usd),
    fraction: numOrNull(o.fraction)
  };
}

function display(v: unknown): IDisplay {
  const o = obj(v);
  const dash = (x: unknown) => str(x) || '–';
  return {
    scope: str(o.scope),
    cost: dash(o.cost),
    saved: dash(o.saved),
    calls: dash(o.calls),
    cache_hits: dash(o.cache_hits),
    utilisation: dash(o.utilisation),
    gpu_hours: dash(o.gpu_hours),
    budget: str(o.budget) || 'no budget set',
    totals_line: str(o.totals_line),
    header: strings(o.header),
    rows: list(o.rows).map(strings),
    total_row: strings(o.total_row)
  };
}

function report(v: unknown): IReport {
  const o = obj(v);
  const scope = obj(o.scope);
  return {
    per: str(scope.per),
    scopeLabel: str(scope.label),
    totals: totals(o.totals),
    budget: budget(o.budget),
    advice: list(o.advice).map(advice),
    display: display(o.display)
  };
}

function lane(v: unknown): ILane {
  const o = obj(v);
  return {
    route: str(o.route),
    backend: str(o.backend),
    calls: num(o.calls),
    errors: num(o.errors),
    cache_hits: num(o.cache_hits),
    calls_per_min: num(o.calls_per_min),
    latency_p50_s: numOrNull(o.latency_p50_s),
    latency_p95_s: numOrNull(o.latency_p95_s),
    utilisation: numOrNull(o.utilisation),
    window_s: num(o.window_s, 300)
  };
}

function recent(v: unknown): IRecent {
  const o = obj(v);
  return {
    ts: num(o.ts),
    route: str(o.route),
    backend: str(o.backend),
    model: str(o.model),
    status: str(o.status),
    kind: str(o.kind) || 'call',
    input_tokens: num(o.input_tokens),
    output_tokens: num(o.output_tokens),
    cost: str(o.cost) || '–',
    latency_s: num(o.latency_s),
    notebook: str(o.notebook),
    session: str(o.session)
  };
}

function advice(v: unknown): IAdvice {
  if (typeof v === 'string') {
    return { kind: '', title: '', message: v, severity: 'info' };
  }
  const o = obj(v);
  return {
    kind: str(o.kind),
    title: str(o.title),
    message: str(o.message || o.text),
    severity: str(o.severity) || 'info'
  };
}

function session(v: unknown): ISessionRow {
  const o = obj(v);
  return {
    ...totals(o),
    session: str(o.session),
    notebook: str(o.notebook),
    kernel: o.kernel ? str(o.kernel) : null,
    running: o.running === true
  };
}

/** A complete summary from any JSON value (or garbage); never throws. */
export function normalize(raw: unknown): ISummary {
  const o = obj(raw);
  return {
    version: num(o.version, 0),
    generatedAt: num(o.generated_at),
    home: str(o.home),
    note: str(o.note),
    report: report(o.report),
    today: totals(o.today),
    all: totals(o.all),
    sessions: list(o.sessions).map(session),
    lanes: list(o.lanes).map(lane),
    recent: list(o.recent).map(recent),
    markdown: str(o.markdown)
  };
}

/** 950, 12.3K, 4.5M tokens. */
export function formatCount(v: unknown): string {
  const n = num(v, NaN);
  if (!Number.isFinite(n)) {
    return '–';
  }
  const a = Math.abs(n);
  if (a >= 1e9) {
    return (n / 1e9).toFixed(1) + 'B';
  }
  if (a >= 1e6) {
    return (n / 1e6).toFixed(1) + 'M';
  }
  if (a >= 1e4) {
    return (n / 1e3).toFixed(1) + 'K';
  }
  return String(Math.round(n));
}

export function formatPct(v: unknown): string {
  const n = num(v, NaN);
  return Number.isFinite(n) ? `${Math.round(n * 100)}%` : '–';
}

export function formatSeconds(v: unknown): string {
  const n = num(v, NaN);
  if (!Number.isFinite(n)) {
    return '–';
  }
  return n < 1 ? `${Math.round(n * 1000)} ms` : `${n.toFixed(n < 10 ? 2 : 1)} s`;
}

/** The status bar text: the active notebook's spend and its budget's share, named. */
export function statusText(s: ISummary): string {
  const r = s.report;
  const b = r.budget;
  const budgetPart = b.state === 'none' ? 'no budget' : `${formatPct(b.fraction)} of ${b.label}`;
  return `hybridnb ${r.display.cost} · ${budgetPart}`;
}

/** The status bar tooltip: the numbers behind the colour, as the report words them. */
export function statusTitle(s: ISummary): string {
  const lines = [];
  if (s.report.display.totals_line) {
    lines.push(s.report.display.totals_line);
  }
  lines.push(`Today, all kernels: ${s.today.cost} over ${s.today.calls} calls`);
  lines.push(budgetLine(s.report.budget));
  if (s.note) {
    lines.push(s.note);
  }
  lines.push('Click to open the hybridnb operator panel');
  return lines.join('\n');
}

/** The budget with its basis, as the server rendered it ("session budget: $… of $… spent …"). */
export function budgetLine(b: IBudget): string {
  return b.line;
}

/** CSS class for a budget state (coloured by the extension's stylesheet). */
export function budgetClass(state: BudgetState): string {
  return `jp-hybridnb-budget-${state}`;
}

/** Query string for the endpoint, scoped to the active notebook when there is one. */
export function summaryQuery(
  scope: { kernel?: string | null; notebook?: string | null },
  fresh = false
): string {
  const params: string[] = [];
  if (scope.kernel) {
    params.push(`kernel=${encodeURIComponent(scope.kernel)}`);
  }
  if (scope.notebook) {
    params.push(`notebook=${encodeURIComponent(scope.notebook)}`);
  }
  if (fresh) {
    params.push('fresh=1'); // skip the server's throttle (an explicit refresh)
  }
  return params.length ? `?${params.join('&')}` : '';
}
