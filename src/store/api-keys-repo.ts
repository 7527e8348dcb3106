/** API keys in PostgreSQL: only the sha256 of a secret and its first characters are stored. */
import { randomUUID } from 'node:crypto';
import { displayPrefix, hashApiKey, newApiKeySecret } from '../auth/keys.js';
import type { PrismaClient } from './prisma.js';

export interface ApiKeyRecord {
  id: string;
  owner: string;
  name: string;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const select = { id: true, owner: true, name: true, prefix: true, createdAt: true, revokedAt: true } as const;

export class ApiKeysRepo {
  constructor(private readonly db: PrismaClient) {}

  /** Creates a key; the secret is returned here and nowhere else. */
  async create(owner: string, name: string): Promise<{ key: ApiKeyRecord; secret: string }> {
    const secret = newApiKeySecret();
    const key = await this.db.apiKey.create({
      data: { id: randomUUID(), owner, name, hash: hashApiKey(secret), prefix: displayPrefix(secret) },
      select,
    });
    return { key, secret };
  }

  /** The key whose secret hashes to `hash` (revoked or not), or null. */
  findByHash(hash: string): Promise<ApiKeyRecord | null> {
    return this.db.apiKey.findUnique({ where: { hash }, select });
  }

  list(owner?: string): Promise<ApiKeyRecord[]> {
    return this.db.apiKey.findMany({ where: owner !== undefined ? { owner } : {}, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], select });
  }

  /**
   * Revokes the key with this id, or the one key whose display prefix this is. Returns the keys that
   * matched: exactly one is revoked; none or several revoke nothing.
   */
  async revoke(idOrPrefix: string): Promise<ApiKeyRecord[]> {
    const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrPrefix);
    const matches = await this.db.apiKey.findMany({ where: isUuid ? { id: idOrPrefix } : { prefix: idOrPrefix }, select });
    if (matches.length !== 1) return matches;
    const [match] = matches as [ApiKeyRecord];
    if (match.revokedAt) return matches;
    return [await this.db.apiKey.update({ where: { id: match.id }, data: { revokedAt: new Date() }, select })];
  }
}
