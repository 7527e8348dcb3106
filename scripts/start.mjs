#!/usr/bin/env node
// `npm start`: install what is missing, generate the Prisma client, build what changed, then run
// `node dist/main.js all` (migrations, the API and one worker). Signals are passed on.
//
// The build is incremental: nothing runs when no source is newer than the last build (a warm start
// goes straight to `node dist/main.js`), and when something changed tsc --incremental recompiles
// from what it recorded in dist/.tsbuildinfo instead of type-checking the whole project again.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const step = (/** @type {string[]} */ args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
const mtime = (/** @type {string} */ p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

/**
 * The newest modification time of the files under `dir` (0 if there are none).
 * @param {string} dir
 * @returns {number}
 */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : mtime(p));
  }
  return t;
}

step([join(root, 'scripts', 'ensure.mjs')]);

const stamp = join(root, 'dist', '.build-stamp');
const inputs = Math.max(newest(join(root, 'src')), mtime(join(root, 'tsconfig.json')), mtime(join(root, 'package-lock.json')));
if (!existsSync(join(root, 'dist', 'main.js')) || mtime(stamp) < inputs) {
  const started = new Date();
  console.error('regula: compiling (tsc --incremental)');
  step([
    join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
    '-p',
    join(root, 'tsconfig.json'),
    '--incremental',
    '--tsBuildInfoFile',
    join(root, 'dist', '.tsbuildinfo'),
  ]);
  // Stamped with the time the build began: a file saved during the build is newer, so it is built next time.
  writeFileSync(stamp, '');
  utimesSync(stamp, started, started);
}

const child = spawn(process.execPath, [join(root, 'dist', 'main.js'), process.argv[2] ?? 'all'], { cwd: root, stdio: 'inherit' });
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
