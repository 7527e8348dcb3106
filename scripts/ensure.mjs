#!/usr/bin/env node
// Installs what is missing on a fresh clone, so `npm start` and `npm test` work as the first command:
// dependencies (npm ci, when node_modules is absent or older than package-lock.json) and the
// generated Prisma client (when absent or older than prisma/schema.prisma). Plain Node, no dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

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

// Regula's oneDNN tfjs backend (packages/tfjs-backend-onednn): npm may skip dependency install
// scripts, so build it here when its addon or JS entry is missing. Never fatal: without
// libdnnl-dev the backend is unavailable and TFJS_BACKEND=auto falls back to wasm (and says why).
const onednn = join(root, 'packages', 'tfjs-backend-onednn');
if (!existsSync(join(onednn, 'build', 'Release', 'tfjs_onednn.node')) || !existsSync(join(onednn, 'dist', 'index.js'))) {
  console.error('regula: building the oneDNN backend (packages/tfjs-backend-onednn)');
  spawnSync(process.execPath, [join(onednn, 'scripts', 'install.mjs')], { cwd: onednn, stdio: 'inherit' });
}
