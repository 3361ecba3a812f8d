import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { ISummary, budgetClass, budgetLine, formatCount } from './format';
import { SummaryModel } from './model';
import { ITable, lanesTable, recentTable, sessionsTable, spendTable } from './tables';

type Child = Node | string;

function h(tag: string, cls = '', ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  if (cls) {
    el.className = cls;
  }
  for (const c of children) {
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

function stat(label: string, value: string, detail = ''): HTMLElement {
  return h(
    'div',
    'jp-hybridnb-stat',
    h('div', 'jp-hybridnb-stat-label', label),
    h('div', 'jp-hybridnb-stat-value', value),
    h('div', 'jp-hybridnb-stat-detail', detail)
  );
}

function table(t: ITable): HTMLElement {
  const section = h('section', 'jp-hybridnb-section', h('h3', '', t.title));
  if (!t.rows.length) {
    section.append(h('p', 'jp-hybridnb-empty', t.empty));
    return section;
  }
  const head = h('tr', '', ...t.headers.map(x => h('th', '', x)));
  const body = t.rows.map(r =>
    h(
      'tr',
      '',
      ...r.map((x, i) => {
        const td = h('td', '', x);
        td.dataset.label = t.headers[i] ?? ''; // the narrow panel shows label/value pairs
        return td;
      })
    )
  );
  section.append(h('table', 'jp-hybridnb-table', h('thead', '', head), h('tbody', '', ...body)));
  return section;
}

/** The operator view across all kernels: spend, budget, lanes, kernels, advice, recent calls. */
export class OperatorPanel extends Widget {
  constructor(model: SummaryModel, commands: CommandRegistry, insertCommand: string) {
    super();
    this.id = 'jp-hybridnb-operator';
    this.addClass('jp-hybridnb-panel');
    this.title.caption = 'hybridnb: spend and operator view';
    this._model = model;
    this._commands = commands;
    this._insert = insertCommand;
    model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    try {
      this.node.replaceChildren(...this._build(this._model.summary));
    } catch (e) {
      this.node.replaceChildren(h('p', 'jp-hybridnb-note', `hybridnb: cannot show the summary (${e})`));
    }
  }

  private _build(s: ISummary): HTMLElement[] {
    const head = h('header', 'jp-hybridnb-header', h('h2', '', 'hybridnb'));
    const insert = h('button', 'jp-mod-styled jp-hybridnb-insert', 'Insert cost summary');
    insert.addEventListener('click', () => void this._commands.execute(this._insert));
    const refresh = h('button', 'jp-mod-styled', 'Refresh');
    refresh.addEventListener('click', () => void this._model.refresh(true));
    head.append(h('div', 'jp-hybridnb-actions', insert, refresh));

    const r = s.report;
    const b = r.budget;
    const bar = h('div', 'jp-hybridnb-budget-bar');
    const fill = h('div', `jp-hybridnb-budget-fill ${budgetClass(b.state)}`);
    fill.style.width = `${Math.min(100, Math.max(0, (b.fraction ?? 0) * 100))}%`;
    bar.append(fill);
    const budget = h('div', `jp-hybridnb-budget ${budgetClass(b.state)}`, budgetLine(b), bar);
    budget.dataset.budgetState = b.state;

    const d = r.display;
    const stats = h(
      'div',
      'jp-hybridnb-stats',
      stat(d.scope || 'spend', d.cost, `${d.calls} calls`),
      stat('today, all kernels', s.today.cost, `${s.today.calls} calls`),
      stat('tokens', formatCount(r.totals.tokens), `${formatCount(r.totals.input_tokens)} in`),
      stat('cache', `${d.cache_hits} hits`, `${d.saved} saved`),
      stat('utilisation', d.utilisation, `${d.gpu_hours} GPU-h`)
    );
    const out = [head, budget, stats];
    if (d.totals_line) {
      out.push(h('div', 'jp-hybridnb-current', d.totals_line));
    }
    out.push(this._advice(s), table(spendTable(s)), table(lanesTable(s)), table(sessionsTable(s)), table(recentTable(s)));
    const notes = [s.note, this._model.error].filter(x => x);
    if (notes.length) {
      out.push(h('p', 'jp-hybridnb-note', notes.join(' · ')));
    }
    return out;
  }

  private _advice(s: ISummary): HTMLElement {
    const section = h('section', 'jp-hybridnb-section jp-hybridnb-advice', h('h3', '', 'Advice'));
    if (!s.report.advice.length) {
      section.append(h('p', 'jp-hybridnb-empty', 'No advice in force.'));
      return section;
    }
    const items = s.report.advice.map(a =>
      h('li', `jp-hybridnb-advice-${a.severity}`, h('strong', '', a.title || a.kind), ' ', a.message)
    );
    section.append(h('ul', '', ...items));
    return section;
  }

  dispose(): void {
    this._model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _model: SummaryModel;
  private _commands: CommandRegistry;
  private _insert: string;
}
