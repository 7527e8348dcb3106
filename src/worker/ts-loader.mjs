// Starts a TypeScript training thread under tsx (tests and `tsx` dev runs only; dist/ runs thread.js).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.__entry);
