// Headless Chromium for the browser scenarios: Debian's /usr/bin/chromium (or
// OVERTONE_CHROMIUM) driven by playwright-core, with a fresh profile removed on exit and the
// flags that keep it off the network except for the pages it is sent to.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { ms, onExit } from './lib.mjs';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * A page of a new headless Chromium, closed (and its profile removed) when the scenario ends.
 * `options` go to playwright's launchPersistentContext (e.g. `ignoreHTTPSErrors` for a test
 * certificate).
 */
export async function chromiumPage(options = {}) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'overtone-chromium-'));
  onExit(() => rmSync(userDataDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.OVERTONE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    timeout: ms(15000),
    viewport: { width: 800, height: 400 },
    ...options,
  });
  onExit(() => context.close());
  return context.pages()[0] ?? (await context.newPage());
}
