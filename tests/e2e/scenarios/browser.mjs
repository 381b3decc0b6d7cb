// Scenario 7: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loads a
// page using pusher-js's browser build and laravel-echo's IIFE build from node_modules. At stage
// "subscribed" the Python side triggers two `headline` events; the page lists them in the DOM.
// Optional: OVERTONE_SCREENSHOT (a PNG path), OVERTONE_CHROMIUM (default /usr/bin/chromium).
import { chromiumPage, servePage } from './chromium.mjs';

import { env, ms, scenario, stage } from './lib.mjs';

const CHANNEL = 'browser-news';
const FILES = {
  '/': ['browser/index.html', 'text/html; charset=utf-8'],
  '/pusher.js': ['node_modules/pusher-js/dist/web/pusher.min.js', 'text/javascript'],
  '/echo.js': ['node_modules/laravel-echo/dist/echo.iife.js', 'text/javascript'],
};

scenario(
  'browser',
  async () => {
    const origin = await servePage(FILES);
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
