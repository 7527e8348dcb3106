/** Creates the database named in a PostgreSQL URL when it does not exist yet (first start on a new machine). */
import pg from 'pg';
import { parseDatabaseUrl } from './migrate.js';

export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const { connectionString } = parseDatabaseUrl(databaseUrl);
  const url = new URL(connectionString);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) return false;
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    } catch (err) {
      if ((err as { code?: string }).code !== '42P04') throw err; // created concurrently
    }
    return true;
  } finally {
    await client.end();
  }
}
