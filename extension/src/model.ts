import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { ISummary, normalize, summaryQuery } from './format';
import { requestSummary } from './request';

export interface IScope {
  kernel: string | null;
  notebook: string | null;
}

/**
 * Polls `/hybridnb/summary` (the jupyter-resource-usage pattern) and keeps the
 * last good state; a failed poll keeps the old numbers and sets `error`.
 */
export class SummaryModel {
  constructor(interval = 3000) {
    this._poll = new Poll({
      auto: true,
      factory: () => this.refresh(),
      frequency: { interval, backoff: true, max: 60 * 1000 },
      name: 'hybridnb:summary',
      standby: 'when-hidden'
    });
  }

  get summary(): ISummary {
    return this._summary;
  }

  get error(): string {
    return this._error;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get scope(): IScope {
    return this._scope;
  }

  /** Scope `current` to the active notebook; refreshes at once when it changes. */
  setScope(scope: IScope): void {
    if (scope.kernel === this._scope.kernel && scope.notebook === this._scope.notebook) {
      return;
    }
    this._scope = { ...scope };
    void this._poll.refresh();
  }

  /** Fetch now; `fresh` asks the server to skip its throttle (the panel's Refresh button). */
  async refresh(fresh = false): Promise<void> {
    try {
      this._summary = normalize(await requestSummary(summaryQuery(this._scope, fresh)));
      this._error = '';
    } catch (e) {
      this._error = `hybridnb: summary unavailable (${String((e as Error)?.message ?? e)})`;
    }
    this._changed.emit();
  }

  dispose(): void {
    this._poll.dispose();
  }

  private _poll: Poll;
  private _summary: ISummary = normalize({});
  private _error = '';
  private _scope: IScope = { kernel: null, notebook: null };
  private _changed = new Signal<this, void>(this);
}
