/**
 * Browser sessions for the dashboard (AUTH=required): a login with an API key creates a random
 * session token, kept in an HttpOnly cookie, so the key itself never sits in page script, URLs or
 * logs, and EventSource (which cannot send an Authorization header) is authenticated by the cookie.
 *
 * Sessions live in Redis under the sha256 of the token (a leaked Redis dump yields no usable
 * cookie), expire on their own after SESSION_TTL_SECONDS, and name the API key they came from by
 * its hash: every request re-reads that key, so revoking it ends its sessions at once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Principal } from './principal.js';

export const SESSION_TTL_SECONDS = 12 * 60 * 60;

export interface SessionRecord extends Principal {
  /** sha256 of the API key the session was opened with (what the API key table stores). */
  keyHash: string;
  /** The CSRF token every state-changing request of this session must echo in X-CSRF-Token. */
  csrf: string;
  expiresAt: string;
}

/** Where sessions are kept; the Redis implementation below, or a Map in tests of the HTTP layer. */
export interface SessionStore {
  create(principal: Principal, keyHash: string): Promise<{ token: string; record: SessionRecord }>;
  get(token: string): Promise<SessionRecord | null>;
  delete(token: string): Promise<void>;
  close(): Promise<void>;
}

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time string comparison (CSRF tokens). */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class RedisSessionStore implements SessionStore {
  private readonly redis: Redis;

  constructor(
    redisUrl: string,
    private readonly prefix: string,
    private readonly ttlSeconds = SESSION_TTL_SECONDS,
  ) {
    // Lazy: an API with AUTH=off, or nobody logging in, never opens this connection.
    this.redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
    this.redis.on('error', () => {});
  }

  private key(token: string): string {
    return `${this.prefix}:session:${createHash('sha256').update(token).digest('hex')}`;
  }

  async create(principal: Principal, keyHash: string): Promise<{ token: string; record: SessionRecord }> {
    const token = newToken();
    const record: SessionRecord = {
      keyId: principal.keyId,
      owner: principal.owner,
      keyHash,
      csrf: newToken(),
      expiresAt: new Date(Date.now() + this.ttlSeconds * 1000).toISOString(),
    };
    await this.redis.set(this.key(token), JSON.stringify(record), 'EX', this.ttlSeconds);
    return { token, record };
  }

  async get(token: string): Promise<SessionRecord | null> {
    if (!TOKEN_PATTERN.test(token)) return null;
    const raw = await this.redis.get(this.key(token));
    return raw ? (JSON.parse(raw) as SessionRecord) : null;
  }

  async delete(token: string): Promise<void> {
    if (TOKEN_PATTERN.test(token)) await this.redis.del(this.key(token));
  }

  async close(): Promise<void> {
    if (this.redis.status === 'wait') {
      this.redis.disconnect();
      return;
    }
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
