#!/usr/bin/env node
// Installs what is missing on a fresh clone, so `npm start` and `npm test` work as the first command:
// dependencies (npm ci, when node_modules is absent or older than package-lock.json), the
// generated Prisma client (when absent or older than prisma/schema.prisma) and the oneDNN backend
// (below). Plain Node, no dependencies. On a warm machine it checks file times and runs nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mtime = (/** @type {string} */ p) => (existsSync(p) ? statSync(p).mtimeMs : 0);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** @param {string} cmd @param {string[]} args */
function run(cmd, args) {
  console.error(`regula: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || mtime(installed) < mtime(join(root, 'package-lock.json'))) {
  run(npm, ['ci', '--no-audit', '--no-fund']);
}

const client = join(root, 'src', 'store', 'generated', 'prisma', 'client.ts');
if (!existsSync(client) || mtime(client) < mtime(join(root, 'prisma', 'schema.prisma'))) {
  run(process.execPath, [join(root, 'scripts', 'prisma-generate.mjs')]);
}

// Regula's oneDNN tfjs backend (packages/tfjs-backend-onednn). npm may skip dependency install
// scripts, so its JS entry and native addon are built here when missing — and only then: a start
// with everything built runs no compiler. The compiler only runs when oneDNN's headers are there,
// so a machine without them gets one line saying what to install, never a C++ error; a native
// build that failed is not retried until oneDNN or the compiler changes. Never fatal: without the
// addon TFJS_BACKEND=auto falls back to wasm (7-10x slower) and records why on each run.
const onednn = join(root, 'packages', 'tfjs-backend-onednn');
const addon = join(onednn, 'build', 'Release', 'tfjs_onednn.node');
const cacheDir = join(root, 'node_modules', '.cache', 'regula');
const failedMarker = join(cacheDir, 'onednn-build-failed');
const npmRun = (/** @type {string} */ script) => spawnSync(npm, ['run', '--silent', script], { cwd: onednn, stdio: 'inherit' }).status === 0;

const DNNL_HEADERS = ['/usr/include/dnnl.hpp', '/usr/include/oneapi/dnnl/dnnl.hpp', '/usr/local/include/dnnl.hpp'];
const onednnHeaders = () => DNNL_HEADERS.find((p) => existsSync(p)) ?? null;
const onPath = (/** @type {string} */ cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const INSTALL = 'apt-get install -y --no-install-recommends libdnnl-dev g++ make python3';

/** Debian or Ubuntu, as root, with apt-get: Regula may install oneDNN itself (REGULA_INSTALL_ONEDNN=0 says no). */
function installOnednn() {
  const canApt = process.platform === 'linux' && existsSync('/etc/debian_version') && process.getuid?.() === 0 && onPath('apt-get');
  if (!canApt || process.env.REGULA_INSTALL_ONEDNN === '0') {
    console.error(
      'regula: the fast CPU backend (onednn) needs oneDNN, which is not installed; training uses wasm, 7-10x slower. ' +
        `Install it with: sudo ${INSTALL}` +
        (canApt ? ' (REGULA_INSTALL_ONEDNN=0 is set, so Regula does not do it for you)' : ''),
    );
    return false;
  }
  console.error(`regula: installing oneDNN for the fast CPU backend: ${INSTALL} (set REGULA_INSTALL_ONEDNN=0 to skip this)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const ok =
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env }).status === 0 && spawnSync('sh', ['-c', INSTALL], { stdio: 'inherit', env }).status === 0;
  if (!ok) console.error(`regula: apt-get could not install oneDNN; training uses wasm. Try it by hand: sudo ${INSTALL}`);
  return ok && onednnHeaders() !== null;
}

if (!existsSync(join(onednn, 'dist', 'index.js'))) {
  console.error("regula: building the oneDNN backend's JS entry (packages/tfjs-backend-onednn)");
  npmRun('build:ts');
}
if (!existsSync(addon)) {
  let headers = onednnHeaders();
  if (!headers && installOnednn()) headers = onednnHeaders();
  if (headers) {
    // What a failed build depended on: retrying only makes sense when one of these changed.
    const fingerprint = JSON.stringify({ headers, mtime: mtime(headers), compiler: onPath('g++') || onPath('c++') });
    const failedBefore = existsSync(failedMarker) && readFileSync(failedMarker, 'utf8') === fingerprint;
    if (failedBefore) {
      console.error(`regula: the oneDNN addon failed to build before and nothing changed since; training uses wasm (delete ${failedMarker} to retry)`);
    } else {
      console.error('regula: building the oneDNN backend (packages/tfjs-backend-onednn, once)');
      if (npmRun('build:native') && existsSync(addon)) rmSync(failedMarker, { force: true });
      else {
        mkdirSync(cacheDir, { recursive: true });
        writeFileSync(failedMarker, fingerprint);
        console.error('regula: the oneDNN addon did not build; training uses wasm. It is not retried until oneDNN or the compiler changes.');
      }
    }
  }
}
