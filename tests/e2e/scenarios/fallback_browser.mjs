// Headless Chromium loads a page on another origin whose pusher-js keeps its default
// transports, pointed at a proxy that refuses WebSocket upgrades (OVERTONE_PORT is that
// proxy; OVERTONE_TLS=1 for https). pusher-js must fall back to HTTP by itself; at stage
// "subscribed" the Python side publishes two `headline` events, which the page lists.
// Reports the transport and the times from `new Pusher()` to connected, subscribed and the
// first event.
import { chromiumPage, servePage } from './chromium.mjs';

import { env, ms, scenario, stage } from './lib.mjs';

const CHANNEL = 'fallback-news';
const FILES = {
  '/': ['browser/fallback.html', 'text/html; charset=utf-8'],
  '/pusher.js': ['node_modules/pusher-js/dist/web/pusher.min.js', 'text/javascript'],
};

scenario(
  'fallback_browser',
  async () => {
    const origin = await servePage(FILES);
    const tls = process.env.OVERTONE_TLS === '1';
    const page = await chromiumPage({ ignoreHTTPSErrors: tls });
    const problems = [];
    const sockets = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    const query = new URLSearchParams({
      host: env.host,
      port: env.port,
      key: env.key,
      channel: CHANNEL,
      tls: tls ? '1' : '0',
    });
    await page.goto(`${origin}?${query}`, { timeout: ms(10000) });
    await page.waitForFunction(
      () => document.getElementById('status').textContent === 'subscribed',
      null,
      { timeout: ms(30000) },
    );
    await stage('subscribed', { channel: CHANNEL });
    await page.waitForFunction(() => document.querySelectorAll('#events li').length >= 2, null, {
      timeout: ms(10000),
    });
    return {
      state: await page.textContent('#state'),
      transport: await page.textContent('#transport'),
      headlines: await page.$$eval('#events li', (items) => items.map((item) => item.textContent)),
      timings: await page.evaluate(() => window.timings),
      websocket_urls: sockets,
      problems,
    };
  },
  60000,
);
