// The add-on in headless Chromium (Debian's /usr/bin/chromium via playwright-core): the page
// loads pusher-js's browser build (local static server) and the add-on from overtone's own
// /overtone/recovery.js with a <script> tag, and connects through a TCP proxy. 20 events
// arrive live; the proxy resets the connection and refuses new ones for 5 s while 100 more
// are published; 30 more follow right after it comes back, and a last one once the page has
// them all. Every event must be on the page once, in order, recovered from overtone's history.
// Optional: OVERTONE_CHROMIUM (default /usr/bin/chromium).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';

import { chromiumPage } from './chromium.mjs';

import { E2E_DIR, check, env, ms, onExit, scenario, serverSdk } from './lib.mjs';
import { CutProxy, cutWhile, publish, range } from './recovery_lib.mjs';

const CHANNEL = 'recovery-browser';
const EVENT = 'tick';
const OVERTONE_ORIGIN = `http://${env.host}:${env.port}`;

/** A static server on 127.0.0.1 for the page and pusher-js's browser build only. */
async function servePage() {
  const server = createServer((request, response) => {
    const pathname = new URL(request.url, 'http://x').pathname;
    if (pathname === '/') {
      const page = readFileSync(path.join(E2E_DIR, 'browser/recovery.html'), 'utf8');
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(page.replaceAll('{{OVERTONE_ORIGIN}}', OVERTONE_ORIGIN));
    } else if (pathname === '/pusher.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' });
      response.end(readFileSync(path.join(E2E_DIR, 'node_modules/pusher-js/dist/web/pusher.min.js')));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  onExit(() => server.close());
  return `http://127.0.0.1:${server.address().port}/`;
}

scenario(
  'recovery_browser',
  async () => {
    const sdk = serverSdk();
    const proxy = await new CutProxy(env.port).start();
    const origin = await servePage();
    const page = await chromiumPage();
    const problems = [];
    const scripts = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      // A refused WebSocket is logged as an error while the network is cut: that is the test.
      if (message.type() === 'error' && !message.text().includes('WebSocket')) {
        problems.push(`console: ${message.text()}`);
      }
    });
    page.on('response', (response) => {
      if (response.url().endsWith('.js')) {
        scripts.push({
          url: response.url(),
          status: response.status(),
          content_type: response.headers()['content-type'],
          cache_control: response.headers()['cache-control'] ?? null,
          etag: response.headers().etag ?? null,
        });
      }
    });

    const query = new URLSearchParams({ host: env.host, port: proxy.port, key: env.key, channel: CHANNEL });
    await page.goto(`${origin}?${query}`, { timeout: ms(10000) });
    await page.waitForFunction(
      () => document.getElementById('status').textContent === 'subscribed',
      null,
      { timeout: ms(10000) },
    );
    const count = () => page.evaluate(() => window.received.length);
    const waitCount = (n, timeout) =>
      page.waitForFunction((n) => window.received.length >= n, n, { timeout: ms(timeout) });
    const firstSocket = await page.evaluate(() => window.socketId());

    await publish(sdk, CHANNEL, EVENT, range(1, 20));
    await waitCount(20, 5000);
    const before = await page.evaluate(() => window.position());
    const { cut_ms: cutMs } = await cutWhile(proxy, 5, () =>
      publish(sdk, CHANNEL, EVENT, range(21, 120), 20),
    );
    check((await count()) === 20, 'nothing arrives while the network is cut');
    const restored = Date.now();
    await publish(sdk, CHANNEL, EVENT, range(121, 150));
    await waitCount(150, 30000);
    const caughtUpMs = Date.now() - restored;
    await publish(sdk, CHANNEL, EVENT, [151]);
    await page.waitForFunction(() => window.received.includes(151), null, { timeout: ms(5000) });

    return {
      received: await page.evaluate(() => window.received),
      listed: await page.$$eval('#events li', (items) => items.length),
      resyncs: await page.evaluate(() => window.resyncs),
      states: await page.evaluate(() => window.states),
      position_before_cut: before,
      position_after: await page.evaluate(() => window.position()),
      first_socket: firstSocket,
      last_socket: await page.evaluate(() => window.socketId()),
      subscribes: proxy.subscribes(CHANNEL),
      successes: proxy.successes(CHANNEL).map(({ position, recovered }) => ({ position, recovered })),
      scripts,
      overtone_origin: OVERTONE_ORIGIN,
      user_agent: await page.evaluate(() => navigator.userAgent),
      problems,
      cut_ms: cutMs,
      caught_up_ms: caughtUpMs,
    };
  },
  90000,
);
