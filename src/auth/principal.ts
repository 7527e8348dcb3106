/** Who is calling, and what they may see. */

/** The caller behind a valid API key. */
export interface Principal {
  keyId: string;
  owner: string;
}

/**
 * What a use case may read or change: runs and studies of this owner, or everything (`null`,
 * when auth is off). Another owner's resource is reported as not found.
 */
export type Scope = string | null;

export function inScope(resourceOwner: string | null, scope: Scope): boolean {
  return scope === null || resourceOwner === scope;
}
