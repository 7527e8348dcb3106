#!/usr/bin/env node
// `npm run prisma:generate`: runs `prisma generate` offline and reproducibly.
//
// Prisma 7's CLI resolves (and, if missing, downloads) its schema-engine binary before every
// command, although `generate` never executes it: the prisma-client generator is pure JS/Wasm.
// With no network that download fails, so point PRISMA_SCHEMA_ENGINE_BINARY at an existing
// file unless the caller set it. The file chosen here is this script itself: it exists wherever
// the repo does and is not executable, so if a future Prisma ever did try to run it, it would fail
// loudly instead of running something unexpected. Telemetry and update checks are switched off.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY || !existsSync(env.PRISMA_SCHEMA_ENGINE_BINARY)) {
  env.PRISMA_SCHEMA_ENGINE_BINARY = fileURLToPath(import.meta.url);
}
env.CHECKPOINT_DISABLE ??= '1';
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1';
env.PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING ??= '1';

const prismaCli = join(dirname(require.resolve('prisma/package.json')), 'build', 'index.js');
const result = spawnSync(process.execPath, [prismaCli, 'generate', ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: 'inherit',
});
if (result.error) throw result.error;
process.exit(result.status ?? 1);
