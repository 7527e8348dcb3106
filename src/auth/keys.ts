/**
 * API key secrets: `rg_` + 32 random bytes in base64url (256 bits). Only their sha256 is stored.
 *
 * Why sha256 and not scrypt/bcrypt: slow, salted hashes protect low-entropy secrets (passwords)
 * against dictionary attacks on a leaked table. A 256-bit random key has no dictionary: inverting
 * sha256 for it is as hard as guessing the key. An unsalted fast hash also lets the lookup be one
 * indexed equality (`hash = sha256(presented key)`) instead of trying every stored salt.
 */
import { createHash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'rg_';
/** Characters of the secret kept for display ("rg_" + 6). */
export const DISPLAY_PREFIX_LENGTH = 9;
const KEY_PATTERN = /^rg_[A-Za-z0-9_-]{43}$/;

export function newApiKeySecret(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function hashApiKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function displayPrefix(secret: string): string {
  return secret.slice(0, DISPLAY_PREFIX_LENGTH);
}

export function isWellFormedApiKey(s: string): boolean {
  return KEY_PATTERN.test(s);
}

export type BearerResult = { token: string } | { error: 'missing' | 'malformed' };

/** The token of an `Authorization: Bearer <token>` header. */
export function parseBearer(header: string | string[] | undefined): BearerResult {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined || raw.trim() === '') return { error: 'missing' };
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(raw);
  if (!m?.[1]) return { error: 'malformed' };
  return { token: m[1] };
}
