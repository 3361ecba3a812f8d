import { Widget } from '@lumino/widgets';

import { budgetClass, statusText, statusTitle } from './format';
import { SummaryModel } from './model';

/** Status bar item: this notebook's spend and its budget (named by basis), coloured by budget state. */
export class SpendStatus extends Widget {
  constructor(model: SummaryModel, onClick: () => void) {
    super({ node: document.createElement('div') });
    this.addClass('jp-hybridnb-status');
    this.node.setAttribute('role', 'button');
    this.node.dataset.budgetState = 'none';
    this._model = model;
    this._onClick = onClick;
    this.node.addEventListener('click', this._onClick);
    model.changed.connect(this._update, this);
    this._update();
  }

  private _update(): void {
    try {
      const s = this._model.summary;
      const state = s.report.budget.state;
      for (const st of ['none', 'ok', 'warn', 'over'] as const) {
        this.toggleClass(budgetClass(st), st === state);
      }
      this.node.dataset.budgetState = state;
      this.node.textContent = statusText(s) + (this._model.error ? ' ⚠' : '');
      this.node.title = statusTitle(s) + (this._model.error ? `\n${this._model.error}` : '');
    } catch (e) {
      this.node.textContent = 'hybridnb –';
    }
  }

  dispose(): void {
    this.node.removeEventListener('click', this._onClick);
    this._model.changed.disconnect(this._update, this);
    super.dispose();
  }

  private _model: SummaryModel;
  private _onClick: () => void;
}
