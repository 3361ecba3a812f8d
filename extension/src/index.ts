import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { MarkdownCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { CommandToolbarButton } from '@jupyterlab/ui-components';

import { summaryQuery } from './format';
import { spendIcon } from './icon';
import { IScope, SummaryModel } from './model';
import { OperatorPanel } from './panel';
import { requestSummary } from './request';
import { SpendStatus } from './statusbar';

export namespace CommandIDs {
  export const insertSummary = 'hybridnb:insert-summary';
  export const openPanel = 'hybridnb:open-panel';
}

function scopeOf(panel: NotebookPanel | null): IScope {
  if (!panel) {
    return { kernel: null, notebook: null };
  }
  return {
    kernel: panel.sessionContext.session?.kernel?.id ?? null,
    notebook: panel.context.path || null
  };
}

/** Insert the Markdown cost summary of `panel`'s notebook as a rendered cell below the active cell. */
async function insertSummary(panel: NotebookPanel, model: SummaryModel): Promise<void> {
  let md: string;
  try {
    md = String(await requestSummary(summaryQuery(scopeOf(panel)), true));
  } catch (e) {
    md = model.summary.markdown || `hybridnb: the cost summary is unavailable (${String(e).replace(/\$/g, '')}).`;
  }
  const notebook = panel.content;
  NotebookActions.insertBelow(notebook);
  NotebookActions.changeCellType(notebook, 'markdown');
  const cell = notebook.activeCell;
  if (cell) {
    cell.model.sharedModel.setSource(md); // the server escapes dollars (see _markdown.py)
    if (cell instanceof MarkdownCell) {
      cell.rendered = true;
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'hybridnb:plugin',
  description: 'hybridnb spend in the status bar, an operator side panel and an export command.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar, ICommandPalette, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    labShell: ILabShell | null
  ) => {
    const model = new SummaryModel();
    const follow = () => model.setScope(scopeOf(tracker.currentWidget));
    tracker.currentChanged.connect(follow);
    tracker.widgetAdded.connect((_, panel) => {
      panel.sessionContext.kernelChanged.connect(follow);
      panel.context.pathChanged.connect(follow);
    });
    follow();

    const panel = new OperatorPanel(model, app.commands, CommandIDs.insertSummary);
    panel.title.icon = spendIcon;
    app.shell.add(panel, 'right', { rank: 900 });

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'hybridnb: Open operator panel',
      icon: spendIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.insertSummary, {
      label: 'hybridnb: Insert cost summary',
      caption: 'Insert the hybridnb cost summary of this notebook as a Markdown cell below',
      icon: spendIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const current = tracker.currentWidget;
        if (current) {
          await insertSummary(current, model);
        }
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.insertSummary, category: 'hybridnb' });
      palette.addItem({ command: CommandIDs.openPanel, category: 'hybridnb' });
    }
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (nb: NotebookPanel) => {
        const button = new CommandToolbarButton({
          commands: app.commands,
          id: CommandIDs.insertSummary,
          label: ''
        });
        if (!nb.toolbar.insertAfter('cellType', 'hybridnb-summary', button)) {
          nb.toolbar.addItem('hybridnb-summary', button);
        }
        return button;
      }
    });

    if (statusBar) {
      const item = new SpendStatus(model, () => app.shell.activateById(panel.id));
      statusBar.registerStatusItem('hybridnb:spend', {
        item,
        align: 'left',
        rank: 50,
        isActive: () => true
      });
    }
    if (labShell) {
      labShell.currentChanged.connect(follow);
    }
  }
};

export default plugin;
