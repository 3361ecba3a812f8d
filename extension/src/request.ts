import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** GET a path under `<base_url>/hybridnb/`, with the server's auth (token/XSRF). */
export async function requestSummary(query = '', markdown = false): Promise<unknown> {
  const settings = ServerConnection.makeSettings();
  const url =
    URLExt.join(settings.baseUrl, 'hybridnb', markdown ? 'summary.md' : 'summary') + query;
  const response = await ServerConnection.makeRequest(url, {}, settings);
  const text = await response.text();
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, text);
  }
  return markdown ? text : JSON.parse(text);
}
