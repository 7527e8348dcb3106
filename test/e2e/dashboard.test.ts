/**
 * The dashboard in a real browser (headless Chromium), against the real API, PostgreSQL, Redis and
 * a real worker training on the built-in emnist-sample:
 *
 *  1. open `/`;  2. submit a small run from the form;  3. see its curves gain points live;
 *  4. cancel a second run;  5. open a finished study's comparison;  6. no console error, no failed request.
 *
 * With AUTH=required: the page asks for a key, logs in with an HttpOnly session cookie, refuses a
 * POST without the CSRF token, and another owner's runs stay invisible.
 *
 * DASHBOARD_SCREENSHOTS=docs writes a screenshot of each page there (how docs/dashboard-*.png are made).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { Page } from 'playwright-core';
import { startHarness, type Harness } from '../support/harness.js';
import { call } from '../support/client.js';
import { openBrowser, type BrowserSession } from './browser.js';

const SHOTS = process.env.DASHBOARD_SCREENSHOTS;
const LONG = 180_000;

/** A harness (started with `opts`) and a browser for one describe block's tests: opened before them, closed after. */
function session(opts: Parameters<typeof startHarness>[0]): { h: Harness; b: BrowserSession } {
  const s = {} as { h: Harness; b: BrowserSession };
  beforeAll(async () => {
    s.h = await startHarness(opts);
    s.b = await openBrowser();
  }, LONG);
  afterAll(async () => {
    await s.b?.close();
    await s.h?.close();
  }, LONG);
  return s;
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, `dashboard-${name}.png`), fullPage: name !== 'run' });
}

/** The number of x values a chart shows (the page keeps it in data-points). */
async function points(page: Page, selector: string): Promise<number> {
  return Number((await page.getAttribute(selector, 'data-points')) ?? '0');
}

/** Starts a run from the New page's form (its defaults: the built-in sample), returns its id. */
async function submitFromForm(page: Page, name: string, fields: Record<string, string>): Promise<string> {
  await page.goto(`${new URL(page.url()).origin}/#/new`);
  await page.waitForFunction(() => (document.querySelector<HTMLTextAreaElement>('#json')?.value ?? '').includes('emnist-sample'));
  await page.fill('#f-name', name);
  for (const [id, value] of Object.entries(fields)) await page.fill(`#f-${id}`, value);
  await page.click('#submit');
  await page.waitForURL(/#\/runs\/[0-9a-f-]{36}$/);
  return page.url().split('/').at(-1) as string;
}

describe('dashboard (browser)', () => {
  const s = session({ worker: true });

  it('runs, cancels, compares, with no console error or failed request', { timeout: 300_000 }, async () => {
    const { h, b } = s;
    const { page } = b;
    onTestFailed(async () => console.error('page problems:', b.problems, '\npage text:', await page.textContent('main').catch(() => '')));
    // 1. The dashboard at /.
    await page.goto(`${h.baseUrl}/`);
    await page.waitForSelector('#runs tbody tr');
    expect(await page.textContent('#runs')).toContain('No runs yet');
    expect(await page.textContent('#who')).toContain('auth off');

    // 2. A small run from the form: the tutorial's baseline CNN on 1,000 sample images, 2 epochs, batch 50.
    const first = await submitFromForm(page, 'e2e: baseline', { limit: '1000', epochs: '2', batchSize: '50', learningRate: '0.002' });
    expect((await call(h, 'GET', `/v1/runs/${first}`)).body).toMatchObject({
      name: 'e2e: baseline',
      dataset: 'emnist-sample',
      spec: { preset: 'baseline', training: { epochs: 2, batchSize: 50, optimizer: { type: 'adam', learningRate: 0.002 } }, dataset: { limit: 1000 } },
    });

    // 3. Its batch curve gains points while it trains, then the epoch curves.
    await page.waitForFunction(() => Number(document.querySelector('#batch-chart')?.getAttribute('data-points')) > 0, null, { timeout: LONG });
    const early = await points(page, '#batch-chart');
    await page.waitForFunction((n) => Number(document.querySelector('#batch-chart')?.getAttribute('data-points')) > n, early, { timeout: LONG });
    await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.getAttribute('data-points')) >= 1, null, { timeout: LONG });
    await shot(page, 'run');

    // 4. A second run, cancelled from its page (queued behind the first, or stopped mid-training).
    const second = await submitFromForm(page, 'e2e: to cancel', { limit: '1000', epochs: '3' });
    expect(second).not.toBe(first);
    await page.click('#cancel');
    await page.waitForSelector('[data-status="cancelled"]', { timeout: LONG });
    expect((await call(h, 'GET', `/v1/runs/${second}`)).body.status).toBe('cancelled');

    // The first run finishes on its page: test metrics, both epochs drawn, then predict a drawing.
    await page.goto(`${h.baseUrl}/#/runs/${first}`);
    await page.waitForSelector('#test-metrics', { timeout: LONG });
    expect(await points(page, '#loss-chart')).toBe(2);
    await page.locator('#draw').scrollIntoViewIfNeeded();
    const box = (await page.locator('#draw').boundingBox())!;
    await page.mouse.move(box.x + 140, box.y + 40);
    await page.mouse.down();
    await page.mouse.move(box.x + 140, box.y + 240, { steps: 10 });
    await page.mouse.up();
    await page.click('#predict');
    await page.waitForSelector('#predictions .bar');
    expect(await page.locator('#predictions .bar').count()).toBe(5);
    await shot(page, 'run-finished');
    if (SHOTS) {
      // The same page in the dark theme (charts are drawn with the theme's colours at creation).
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.reload();
      await page.waitForSelector('#test-metrics');
      await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.getAttribute('data-points')) === 2);
      await shot(page, 'run-dark');
      await page.emulateMedia({ colorScheme: 'light' });
    }

    // "Run again with…": the form starts from the run's spec (its model, not a preset) and submits as is.
    await page.click('#again');
    await page.waitForFunction(() => (document.querySelector<HTMLTextAreaElement>('#json')?.value ?? '').includes('(again)'));
    const again = JSON.parse(await page.inputValue('#json')) as Record<string, unknown>;
    expect(again).toMatchObject({ name: 'e2e: baseline (again)', dataset: { name: 'emnist-sample', limit: 1000 }, training: { epochs: 2, batchSize: 50 } });
    expect(again.preset).toBeUndefined();
    expect((again.model as { layers: unknown[] }).layers).toHaveLength(9);
    await page.click('#submit');
    await page.waitForURL((url) => /#\/runs\/[0-9a-f-]{36}$/.test(url.hash) && !url.hash.endsWith(first));
    await page.click('#cancel');
    await page.waitForSelector('[data-status="cancelled"]', { timeout: LONG });

    // The runs list, live: both runs with their status.
    await page.goto(`${h.baseUrl}/#/runs`);
    await page.waitForSelector(`tr[data-run-id="${second}"] [data-status="cancelled"]`);
    await page.waitForSelector(`tr[data-run-id="${first}"] [data-status="succeeded"]`);
    await shot(page, 'runs');

    // 5. A finished study's comparison.
    const tiny = {
      layers: [{ type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'Flatten' }, { type: 'Dense', units: 47, activation: 'softmax' }],
    };
    const l2 = { type: 'l2', l2: 0.01 };
    const created = await call(h, 'POST', '/v1/studies', {
      body: {
        name: 'e2e study',
        training: { epochs: 2, batchSize: 50 },
        dataset: { name: 'emnist-sample', limit: 300 },
        repeats: 2,
        variants: [
          { label: 'baseline', model: tiny },
          { label: 'l2 kernel', model: { layers: tiny.layers.map((l) => (l.type === 'Flatten' ? l : { ...l, kernelRegularizer: l2 })) } },
        ],
      },
    });
    expect(created.status).toBe(202);
    const studyId = created.body.id as string;
    await page.goto(`${h.baseUrl}/#/studies`);
    await page.waitForSelector(`tr[data-study-id="${studyId}"] [data-status="completed"]`, { timeout: LONG });
    await page.click(`tr[data-study-id="${studyId}"] a`);
    await page.waitForURL(new RegExp(`#/studies/${studyId}$`));
    await page.waitForSelector('#comparison tbody tr');
    expect(await page.locator('#comparison tbody tr').count()).toBe(4);
    expect(await page.textContent('#comparison')).toContain('l2 kernel');
    // Two seeds per variant: the spread over them, one row per variant.
    expect(await page.locator('#variants tbody tr').count()).toBe(2);
    expect(await page.textContent('#variants')).toMatch(/±/);
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="Validation accuracy"]')?.getAttribute('data-points')) === 2);
    expect(await page.locator('[data-chart="Validation accuracy"] .u-series').count()).toBe(5); // x + four runs
    await shot(page, 'study');
    await page.goto(`${h.baseUrl}/#/studies`);
    await page.waitForSelector(`tr[data-study-id="${studyId}"]`);
    await shot(page, 'studies');

    // The New page (for the screenshot: the form and its JSON).
    await page.goto(`${h.baseUrl}/#/new`);
    await page.waitForFunction(() => (document.querySelector<HTMLTextAreaElement>('#json')?.value ?? '').includes('emnist-sample'));
    await shot(page, 'new');

    // An invalid value is shown at its field, with the allowed range from the schema.
    b.expectHttpError((url, status) => url.endsWith('/v1/runs') && status === 400);
    await page.fill('#f-epochs', '0');
    await page.click('#submit');
    await page.waitForSelector('#e-epochs:not(:empty)');
    expect(await page.textContent('#e-epochs')).toMatch(/>= 1|minimum|at least/i);

    // 6. Nothing went wrong on the page.
    expect(b.problems).toEqual([]);
  });
});

describe('dashboard with AUTH=required (browser)', () => {
  const s = session({ env: { AUTH: 'required' } });

  it("asks for a key, keeps it out of the page, refuses cookie POSTs without the CSRF token, and shows no other owner's run", {
    timeout: 120_000,
  }, async () => {
    const { h, b } = s;
    const alice = await h.createKey('alice');
    const bob = await h.createKey('bob');
    const tiny = {
      layers: [{ type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'Flatten' }, { type: 'Dense', units: 47, activation: 'softmax' }],
    };
    const run = await call(h, 'POST', '/v1/runs', { key: alice, body: { name: 'alice only', model: tiny, dataset: { name: 'emnist-sample', limit: 200 } } });
    expect(run.status).toBe(202);
    const aliceRun = run.body.id as string;

    const { page } = b;
    onTestFailed(async () => console.error('page problems:', b.problems, '\npage text:', await page.textContent('main').catch(() => '')));
    await page.goto(`${h.baseUrl}/`);
    await page.waitForSelector('#login');
    await page.fill('#api-key', bob);
    await page.click('#login button');
    await page.waitForSelector('#runs tbody tr');
    expect(await page.textContent('#who')).toContain('bob');
    expect(await page.textContent('#runs')).toContain('No runs yet');
    expect(await page.content()).not.toContain(aliceRun);
    // The key is not kept by the page, and the session cookie is out of script's reach.
    expect(await page.evaluate(() => document.cookie)).not.toContain('regula_session');
    const cookies = await b.context.cookies();
    const session = cookies.find((c) => c.name === 'regula_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(JSON.stringify(cookies)).not.toContain(bob);

    // Alice's run, by its URL: not found for bob.
    b.expectHttpError((url, status) => url.includes(aliceRun) && status === 404);
    await page.goto(`${h.baseUrl}/#/runs/${aliceRun}`);
    await page.waitForSelector('.notice.error');
    expect(await page.textContent('.notice.error')).toContain('not found');

    // A POST that rides on the cookie without the CSRF token is refused; with it, it goes through.
    b.expectHttpError((url, status) => url.endsWith('/cancel') && status === 403);
    const forged = await page.evaluate(async (id) => (await fetch(`/v1/runs/${id}/cancel`, { method: 'POST' })).status, aliceRun);
    expect(forged).toBe(403);

    // Alice sees her run, and its event stream works on the cookie alone (EventSource sends no header).
    await page.goto(`${h.baseUrl}/#/runs`);
    await page.click('#logout');
    await page.waitForSelector('#login');
    await page.fill('#api-key', alice);
    await page.click('#login button');
    await page.waitForSelector(`tr[data-run-id="${aliceRun}"]`);
    await page.goto(`${h.baseUrl}/#/runs/${aliceRun}`);
    await page.waitForSelector('#events tr[data-event="queued"]');
    await page.click('#cancel');
    await page.waitForSelector('[data-status="cancelled"]');

    // A revoked key ends its session at once.
    await h.ctx.apiKeys.revoke((await h.ctx.apiKeys.list('alice'))[0]!.id);
    b.expectHttpError((url, status) => status === 401 && url.includes('/v1/'));
    await page.goto(`${h.baseUrl}/#/runs`);
    // The run list's request is answered 401 and the page asks for a key; only then reload, so the
    // reload does not abort that request while it is still in flight.
    await page.waitForSelector('#login');
    await page.reload();
    await page.waitForSelector('#login');

    expect(b.problems).toEqual([]);
  });
});
