/** Authorization header → the caller, or why not. */
import { hashApiKey, isWellFormedApiKey, parseBearer } from './keys.js';
import type { Principal } from './principal.js';
import type { ApiKeyRecord } from '../store/api-keys-repo.js';

export interface ApiKeyLookup {
  findByHash(hash: string): Promise<ApiKeyRecord | null>;
}

export type AuthOutcome = { principal: Principal } | { failure: string };

export async function authenticate(header: string | string[] | undefined, keys: ApiKeyLookup): Promise<AuthOutcome> {
  const bearer = parseBearer(header);
  if ('error' in bearer) {
    return {
      failure: bearer.error === 'missing' ? 'an API key is required: send "Authorization: Bearer <key>"' : 'the Authorization header must be "Bearer <key>"',
    };
  }
  // Not one of ours: no need to ask the database.
  if (!isWellFormedApiKey(bearer.token)) return { failure: 'the API key is not valid' };
  const key = await keys.findByHash(hashApiKey(bearer.token));
  if (!key) return { failure: 'the API key is not valid' };
  if (key.revokedAt) return { failure: 'the API key has been revoked' };
  return { principal: { keyId: key.id, owner: key.owner } };
}
