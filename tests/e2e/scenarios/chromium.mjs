// Headless Chromium for the browser scenarios: Debian's /usr/bin/chromium (or
// OVERTONE_CHROMIUM) driven by playwright-core, with a fresh profile removed on exit and the
// flags that keep it off the network except for the pages it is sent to.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { E2E_DIR, ms, onExit } from './lib.mjs';

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

/**
 * A static server on 127.0.0.1 for `files` only (`{path: [file under tests/e2e, type]}`),
 * closed when the scenario ends; its origin URL.
 */
export async function servePage(files) {
  const server = createServer((request, response) => {
    const file = files[new URL(request.url, 'http://x').pathname];
    if (!file) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file[1] });
    response.end(readFileSync(path.join(E2E_DIR, file[0])));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  onExit(() => server.close());
  return `http://127.0.0.1:${server.address().port}/`;
}
