// Scenario 7: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loads a
// page using pusher-js's browser build and laravel-echo's IIFE build from node_modules. At stage
// "subscribed" the Python side triggers two `headline` events; the page lists them in the DOM.
// Optional: OVERTONE_SCREENSHOT (a PNG path), OVERTONE_CHROMIUM (default /usr/bin/chromium).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';

import { chromiumPage } from './chromium.mjs';

import { E2E_DIR, env, ms, onExit, scenario, stage } from './lib.mjs';

const CHANNEL = 'browser-news';
const FILES = {
  '/': ['browser/index.html', 'text/html; charset=utf-8'],
  '/pusher.js': ['node_modules/pusher-js/dist/web/pusher.min.js', 'text/javascript'],
  '/echo.js': ['node_modules/laravel-echo/dist/echo.iife.js', 'text/javascript'],
};

/** A static server on 127.0.0.1 for the page and the two client builds only. */
async function servePage() {
  const server = createServer((request, response) => {
    const file = FILES[new URL(request.url, 'http://x').pathname];
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

scenario(
  'browser',
  async () => {
    const origin = await servePage();
    const page = await chromiumPage();
    const problems = [];
    const sockets = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });

    const query = new URLSearchParams({ host: env.host, port: env.port, key: env.key, channel: CHANNEL });
    await page.goto(`${origin}?${query}`, { timeout: ms(10000) });
    await page.waitForFunction(
      () => document.getElementById('status').textContent !== 'subscribing',
      null,
      { timeout: ms(10000) },
    );
    const status = await page.textContent('#status');
    const socketId = await page.textContent('#socket');
    if (status === 'subscribed') {
      await stage('subscribed', { channel: CHANNEL, socket_id: socketId });
      await page.waitForFunction(() => document.querySelectorAll('#events li').length >= 2, null, {
        timeout: ms(10000),
      });
    }
    const screenshot = process.env.OVERTONE_SCREENSHOT;
    if (screenshot) await page.screenshot({ path: screenshot });

    return {
      status,
      socket_id: socketId,
      state: await page.textContent('#state'),
      headlines: await page.$$eval('#events li', (items) => items.map((item) => item.textContent)),
      user_agent: await page.evaluate(() => navigator.userAgent),
      websocket_urls: sockets,
      problems,
    };
  },
  45000,
);
