// Builds the native addon (node-gyp) and the JS entry (tsc) through this
// package's npm scripts, which put npm's bundled node-gyp on PATH; usable as
// the npm install hook and from a bootstrap script (node scripts/install.mjs).
// It never fails: without libdnnl-dev or a compiler the package still loads,
// and registerOnednnBackend() throws an Error naming what to install, so
// callers can fall back to another tfjs backend.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** @param {string} script */
function run(script) {
  const res = spawnSync(npm, ['run', '--silent', script], { cwd: root, stdio: 'inherit' });
  return res.status === 0;
}

if (!run('build:native')) {
  console.warn(
    '@regula/tfjs-backend-onednn: the native addon did not build (apt-get install libdnnl-dev g++ make python3, ' +
      'then npm run build in packages/tfjs-backend-onednn); the onednn backend will be unavailable.',
  );
}
if (!run('build:ts')) {
  console.warn('@regula/tfjs-backend-onednn: tsc failed; the package entry (dist/index.js) is missing.');
}
