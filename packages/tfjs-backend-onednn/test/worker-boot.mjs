// Worker bootstrap: registers tsx's loader in this thread, then runs the TypeScript entry.
import { register } from 'tsx/esm/api';

register();
await import('./worker-train.ts');
