/** registerOnednnBackend must fail with an actionable message when the addon or libdnnl is missing. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { explainLoadError } from '../src/native.js';
import { nativeAvailable } from './helpers.js';

const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));

function registerIn(env: Record<string, string>): string {
  const code = `import(${JSON.stringify(entry)}).then((m) => m.registerOnednnBackend()).then(() => console.log('OK'), (e) => console.log('ERR ' + e.message));`;
  const res = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return res.stdout.trim();
}

describe('loading the addon', () => {
  it('explains a missing build', () => {
    const out = registerIn({ ONEDNN_ADDON_PATH: '/nonexistent/tfjs_onednn.node' });
    expect(out).toMatch(/^ERR The oneDNN addon is not built .*apt-get install libdnnl-dev.*npm run build/);
  });

  it('explains a missing libdnnl', () => {
    const msg = explainLoadError(new Error('libdnnl.so.2: cannot open shared object file: No such file or directory'));
    expect(msg).toMatch(/libdnnl\.so\.2 not found .*apt-get install libdnnl-dev/);
  });

  it.skipIf(!nativeAvailable)('loads when built', () => {
    expect(registerIn({})).toBe('OK');
  });
});
