/** The one line `npm start` prints when Regula can be used: where to point a browser, and how it trains. */
import type { Config } from './config.js';

/** "Regula ready at http://localhost:3000/ (docs at /docs) · backend onednn" */
export function readyLine(role: string, config: Pick<Config, 'host' | 'port'>, backend: string | null): string {
  const on = backend ? ` · backend ${backend}` : '';
  if (role === 'worker') return `Regula worker ready${on}`;
  // 0.0.0.0 and :: listen on every interface; a browser on this machine reaches them as localhost.
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host;
  return `Regula ready at http://${host}:${config.port}/ (docs at /docs)${on}`;
}
