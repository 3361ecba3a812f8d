import { LabIcon } from '@jupyterlab/ui-components';

const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16z"/>
    <path d="M12.9 11.1c-2-.5-2.6-1-2.6-1.8 0-.9.9-1.6 2.3-1.6 1.5 0 2.1.7 2.1 1.7h1.8c-.1-1.5-1-2.8-2.7-3.2V4.5h-2.4v1.7c-1.6.3-2.8 1.4-2.8 2.9 0 1.8 1.5 2.7 3.7 3.2 2 .5 2.4 1.2 2.4 1.9 0 .5-.4 1.4-2.3 1.4-1.7 0-2.4-.8-2.5-1.7H8.2c.1 1.8 1.4 2.8 2.9 3.1v1.7h2.4v-1.7c1.6-.3 2.8-1.2 2.8-2.9 0-2.3-2-3.1-3.4-3.5z"/>
  </g>
</svg>`;

/** The hybridnb icon: side panel tab, toolbar button, palette. */
export const spendIcon = new LabIcon({ name: 'hybridnb:spend', svgstr });
