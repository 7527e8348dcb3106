/**
 * API key commands:
 *   create-key --owner <owner> [--name <name>]   prints the secret (once) on stdout, the rest on stderr
 *   list-keys [--owner <owner>]                   id, owner, name, prefix, created, revoked
 *   revoke-key <id | prefix>                      revokes one key (at once: every request checks)
 */
import { parseArgs } from 'node:util';
import type { ApiKeysRepo } from '../store/api-keys-repo.js';

export const KEY_COMMANDS = ['create-key', 'list-keys', 'revoke-key'] as const;
export type KeyCommand = (typeof KEY_COMMANDS)[number];

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const OWNER = /^[^\s\p{C}][^\p{C}]{0,199}$/u;

export async function runKeyCommand(command: KeyCommand, args: string[], keys: ApiKeysRepo, io: CliIo): Promise<void> {
  if (command === 'create-key') {
    const { values } = parseArgs({ args, options: { owner: { type: 'string' }, name: { type: 'string' } }, strict: true });
    const owner = values.owner?.trim();
    if (!owner || !OWNER.test(owner)) throw new UsageError('create-key needs --owner <owner> (1-200 printable characters)');
    const name = values.name?.trim() || 'default';
    const { key, secret } = await keys.create(owner, name);
    io.err(`regula: created API key ${key.id} (${key.prefix}…) for owner "${owner}", name "${name}".`);
    io.err('regula: the secret follows; it is shown only now (Regula stores only its sha256):');
    io.out(secret);
    return;
  }
  if (command === 'list-keys') {
    const { values } = parseArgs({ args, options: { owner: { type: 'string' } }, strict: true });
    for (const k of await keys.list(values.owner)) {
      io.out([k.id, k.owner, k.name, `${k.prefix}…`, k.createdAt.toISOString(), k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active'].join('\t'));
    }
    return;
  }
  const { positionals } = parseArgs({ args, allowPositionals: true, strict: true });
  const [which] = positionals;
  if (!which || positionals.length !== 1) throw new UsageError('revoke-key needs one key id or display prefix (see list-keys)');
  const matches = await keys.revoke(which);
  if (matches.length === 0) throw new UsageError(`no API key has the id or prefix "${which}"`);
  if (matches.length > 1) throw new UsageError(`${matches.length} keys have the prefix "${which}"; give the id (see list-keys)`);
  const [k] = matches as [(typeof matches)[number]];
  io.err(`regula: API key ${k.id} (${k.prefix}…, owner "${k.owner}") is revoked${k.revokedAt ? ` since ${k.revokedAt.toISOString()}` : ''}.`);
}
