#!/usr/bin/env node
// `npm start`: install what is missing, generate the Prisma client, build, then run
// `node dist/main.js all` (migrations, the API and one worker). Signals are passed on.
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const step = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
step([join(root, 'scripts', 'ensure.mjs')]);
step([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')]);

const child = spawn(process.execPath, [join(root, 'dist', 'main.js'), process.argv[2] ?? 'all'], { cwd: root, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
