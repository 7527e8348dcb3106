/**
 * Headless Chromium for the dashboard tests: Debian's /usr/bin/chromium driven by playwright-core
 * (no browser download), a fresh profile per launch, and a record of everything that went wrong on
 * the page — console errors, uncaught exceptions, failed requests and HTTP errors — which the
 * tests assert is empty.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS } from '../support/chromium.js';

export { CHROMIUM, CHROMIUM_FLAGS };

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** Everything that went wrong so far, one line each. */
  problems: string[];
  /** Requests whose HTTP error is what the test expects (e.g. another owner's run is a 404). */
  expectHttpError(match: (url: string, status: number) => boolean): void;
  close(): Promise<void>;
}

export async function openBrowser(): Promise<BrowserSession> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the dashboard test drives headless Chromium. Install it with \`apt-get install -y chromium\` (.ci/run does this).`,
    );
  }
  const profile = await mkdtemp(join(tmpdir(), 'regula-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
    colorScheme: 'light',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  const expected: ((url: string, status: number) => boolean)[] = [];
  page.on('console', (m) => {
    // Chromium logs every HTTP error response as a console error too; those are judged below,
    // where the ones a test expects can be told apart.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded with a status of')) {
      problems.push(`console error: ${m.text()} (${m.location().url})`);
    }
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText ?? '';
    // The page closes a run's or study's event stream itself when it leaves the page or the run
    // ends; Chromium reports that as an aborted request. Nothing else may fail.
    if (why === 'net::ERR_ABORTED' && /\/events(\?|$)/.test(r.url())) return;
    problems.push(`request failed: ${r.method()} ${r.url()} ${why}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !expected.some((m) => m(r.url(), r.status()))) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  return {
    context,
    page,
    problems,
    expectHttpError: (m) => expected.push(m),
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
