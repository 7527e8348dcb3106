import { describe, expect, it } from 'vitest';
import { generateOpenApi, readCommittedOpenApi } from '../../src/http/openapi.js';

describe('OpenAPI document', () => {
  it('the committed openapi/openapi.json matches the routes (run `npm run openapi` after changing a schema)', async () => {
    const generated = await generateOpenApi();
    expect(await readCommittedOpenApi()).toBe(generated);
    const doc = JSON.parse(generated) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/healthz',
        '/readyz',
        '/v1/runs',
        '/v1/runs/{id}',
        '/v1/runs/{id}/cancel',
        '/v1/runs/{id}/events',
        '/v1/runs/{id}/metrics',
        '/v1/runs/{id}/model',
        '/v1/runs/{id}/model/weights.bin',
        '/v1/runs/{id}/predict',
        '/v1/presets',
        '/v1/queue',
        '/v1/studies',
        '/v1/studies/{id}',
        '/v1/studies/{id}/cancel',
        '/v1/studies/{id}/comparison',
        '/v1/studies/{id}/events',
        '/v1/studies/{id}/charts/{chart}',
        '/v1/runs/{id}/charts/{chart}',
      ].sort(),
    );
  });
});
