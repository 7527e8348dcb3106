// Prisma CLI configuration (Prisma 7). The runtime client does not read this file:
// src/store/prisma.ts connects through @prisma/adapter-pg, and migrations are applied
// offline by src/store/migrate.ts (see `npm run migrate`).
import { defineConfig } from 'prisma/config';

const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/regula';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: {
    path: 'prisma/migrations',
  },
  datasource: {
    url: process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL,
  },
});
