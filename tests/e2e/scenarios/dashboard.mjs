// The dashboard in headless Chromium against the real server: Basic authentication, the
// overview moving as pusher-js clients connect and subscribe, events of the npm `pusher` SDK in
// the debug console, a presence member in the channel view, the two actions, and no app secret
// anywhere in what the browser receives.
//
// Reads OVERTONE_DASHBOARD_PASSWORD and OVERTONE_ARTIFACTS (a directory for the screenshots
// dashboard-*.png).
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { chromiumPage } from './chromium.mjs';

import {
  check,
  connected,
  env,
  errorCode,
  ms,
  onExit,
  poll,
  pusherClient,
  record,
  scenario,
  sdkChannelAuthorization,
  sdkUserAuthentication,
  serverSdk,
  sleep,
  subscribed,
  waitUntil,
} from './lib.mjs';

const PASSWORD = process.env.OVERTONE_DASHBOARD_PASSWORD;
const ARTIFACTS = process.env.OVERTONE_ARTIFACTS;
const ORIGIN = `http://${env.host}:${env.port}`;
const PAGE = `${ORIGIN}/dashboard/`;
const USER = 'overtone';
const WAIT = 10000;

const NEWS = 'dash-news';
const ROOM = 'presence-dash-room';
const TICKER = 'cache-dash-ticker';
const FORM = 'dash-form';
// Data a careless page would turn into markup (and run): it must show up as text.
const HOSTILE = 'hello <img src=x id=injected> & <b>bold</b>';

const sdk = serverSdk();
const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** GET the page with `authorization` (or none): status, challenge and whether the page leaked. */
async function refusal(authorization) {
  const headers = authorization ? { authorization } : {};
  const response = await fetch(PAGE, { headers, signal: AbortSignal.timeout(ms(5000)) });
  const body = await response.text();
  return {
    status: response.status,
    challenge: response.headers.get('www-authenticate'),
    page_in_body: /<html|dashboard\.js|<script/i.test(body),
  };
}

/** Read the server-sent events feed outside the browser until the scenario ends. */
function readFeed() {
  const feed = { text: '', status: null, contentType: null };
  const controller = new AbortController();
  onExit(() => controller.abort());
  (async () => {
    const response = await fetch(`${PAGE}api/feed`, {
      headers: { authorization: basic(USER, PASSWORD) },
      signal: controller.signal,
    });
    feed.status = response.status;
    feed.contentType = response.headers.get('content-type');
    const decoder = new TextDecoder();
    for await (const chunk of response.body) feed.text += decoder.decode(chunk, { stream: true });
  })().catch(() => {});
  return feed;
}

/** Record every response the page receives (bodies of all but the endless feed). */
function recordTraffic(page) {
  const traffic = { responses: [], bodies: [], streams: [], requests: [] };
  page.on('request', (request) => traffic.requests.push(request.url()));
  page.on('response', (response) => {
    const type = response.headers()['content-type'] ?? '';
    const entry = { url: response.url(), status: response.status(), type };
    traffic.responses.push(entry);
    if (type.startsWith('text/event-stream')) {
      traffic.streams.push(entry.url);
      return;
    }
    traffic.bodies.push(
      response.body().then(
        (body) => ({ ...entry, body: body.toString('utf8') }),
        (error) => ({ ...entry, body: '', error: String(error) }),
      ),
    );
  });
  return traffic;
}

async function screenshot(page, name, selector) {
  if (!ARTIFACTS) return null;
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `dashboard-${name}.png`);
  if (selector) await page.locator(selector).screenshot({ path: file, timeout: ms(WAIT) });
  else await page.screenshot({ path: file, fullPage: true, timeout: ms(WAIT) });
  return file;
}

const text = (page, selector) => page.locator(selector).textContent({ timeout: ms(WAIT) });

/** Wait until `fn(arg)` is truthy in the page. */
const until = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: ms(WAIT), polling: 100 });

/** The cells' text of every row of a table body. */
const tableRows = (page, selector) =>
  page.$$eval(`${selector} tbody tr`, (rows) =>
    rows.map((row) => [...row.cells].map((cell) => cell.textContent)),
  );

/** Wait until the body of table `selector` contains `needle` (or, with `present` false, not). */
const tableHas = (page, selector, needle, present = true) =>
  until(
    page,
    ([table, text, wanted]) =>
      document.querySelector(`${table} tbody`).textContent.includes(text) === wanted,
    [selector, needle, present],
  );

/** Elements a page that turned data into markup would have made. */
const injected = (page, scope) =>
  page.$$eval(`${scope} img, ${scope} b, #injected`, (nodes) => nodes.length);

/** Whether every cell `td.{name}` of the console shows text for which `test` holds. */
const everyCell = (page, name, needle, exact) =>
  until(
    page,
    ([cls, text, whole]) =>
      [...document.querySelectorAll(`#console-table tbody td.${cls}`)].every((td) =>
        whole ? td.textContent === text : td.textContent.includes(text),
      ),
    [name, needle, exact],
  );

/** The console rows in the page, newest first, as objects of their cells' text. */
function consoleRows(page) {
  return page.$$eval('#console-table tbody tr', (rows) =>
    rows.map((row) => {
      const cell = (name) => row.querySelector(`td.${name}`)?.textContent ?? '';
      return {
        kind: cell('kind'),
        channel: cell('channel'),
        event: cell('event'),
        socket: cell('socket'),
        user: cell('user'),
        code: cell('code'),
        message: cell('message'),
        data: cell('data'),
      };
    }),
  );
}

async function consoleRow(page, label, predicate) {
  return poll(
    `console row: ${label}`,
    async () => (await consoleRows(page)).find(predicate),
    WAIT,
  );
}

async function openChannel(page, name) {
  await page.fill('#channel-filter', name);
  const button = page.locator(`.channel-button[data-channel="${name}"]`);
  await button.click({ timeout: ms(WAIT) });
  await until(page, (wanted) => document.getElementById('channel-name').textContent === wanted, name);
}

/** Submit an action form, answering its confirm() dialog; the dialog's text. */
async function submitConfirmed(page, form, accept = true) {
  const dialog = new Promise((resolve) => {
    page.once('dialog', async (shown) => {
      const message = shown.message();
      if (accept) await shown.accept();
      else await shown.dismiss();
      resolve({ type: shown.type(), message });
    });
  });
  await page.click(`${form} button[type="submit"]`, { timeout: ms(WAIT) });
  return dialog;
}

async function checkAccess() {
  return {
    anonymous: await refusal(null),
    wrong_password: await refusal(basic(USER, `${PASSWORD}-wrong`)),
    wrong_user: await refusal(basic('admin', PASSWORD)),
  };
}

async function checkOverview(page) {
  await until(page, () => document.getElementById('stat-connections').textContent === '0');
  const before = await text(page, '#stat-connections');
  const clients = [];
  for (let i = 0; i < 3; i += 1) {
    const client = pusherClient();
    await connected(client);
    await subscribed(client, NEWS);
    clients.push(client);
  }
  await until(
    page,
    () =>
      document.getElementById('stat-connections').textContent === '3' &&
      document.getElementById('stat-subscriptions').textContent === '3' &&
      document.getElementById('stat-channels').textContent === '1',
  );
  // Events fan out to the three subscribers: the messages-out graph rises above zero.
  for (let i = 0; i < 5; i += 1) await sdk.trigger(NEWS, 'tick', { i });
  await until(page, () => {
    const line = document.querySelector('#graph-messages polyline.series-1');
    const points = (line?.getAttribute('points') ?? '').trim().split(/\s+/).filter(Boolean);
    return points.some((point) => Number(point.split(',')[1]) < 100);
  });
  const connectionPoints = await page.$eval(
    '#graph-connections polyline',
    (line) => line.getAttribute('points').trim().split(/\s+/).length,
  );
  const nodes = await tableRows(page, '#nodes-table');
  return {
    clients,
    result: {
      connections_before: before,
      connections: await text(page, '#stat-connections'),
      subscriptions: await text(page, '#stat-subscriptions'),
      channels: await text(page, '#stat-channels'),
      connection_points: connectionPoints,
      nodes,
    },
  };
}

async function checkConsole(page) {
  const triggered = await sdk.trigger(NEWS, 'dash-hello', { text: HOSTILE });
  check(triggered.status === 200, 'the npm SDK trigger failed', triggered.status);
  const isHello = (r) => r.kind === 'api_event' && r.event === 'dash-hello';
  const row = await consoleRow(page, 'dash-hello', isHello);
  const rows = await consoleRows(page);
  const subscribedRows = rows.filter((r) => r.kind === 'subscribed' && r.channel === NEWS);

  // Filters: by event name, by kind; then pause buffers and resume shows what came meanwhile.
  await page.fill('#console-event', 'hello');
  await everyCell(page, 'event', 'dash-hello', false);
  const filteredByEvent = (await consoleRows(page)).length;
  await page.fill('#console-event', '');
  await page.selectOption('#console-kind', 'subscribed');
  await everyCell(page, 'kind', 'subscribed', true);
  const filteredByKind = (await consoleRows(page)).length;
  await page.selectOption('#console-kind', '');

  await page.click('#console-pause');
  await sdk.trigger(NEWS, 'while-paused', { n: 1 });
  await until(page, () => /paused, [1-9]/.test(document.getElementById('console-buffered').textContent));
  const hiddenWhilePaused = !(await consoleRows(page)).some((r) => r.event === 'while-paused');
  const pausedStatus = await text(page, '#console-status-line');
  await page.click('#console-pause');
  await consoleRow(page, 'while-paused after resume', (r) => r.event === 'while-paused');
  return {
    row,
    injected_elements: await injected(page, '#console-table'),
    subscribed_rows: subscribedRows.length,
    filtered_by_event: filteredByEvent,
    filtered_by_kind: filteredByKind,
    hidden_while_paused: hiddenWhilePaused,
    paused_status: pausedStatus,
  };
}

async function checkPresence(page) {
  const member = pusherClient({
    channelAuthorization: sdkChannelAuthorization(sdk, () => ({
      user_id: 'ada-42',
      user_info: { name: 'Ada <b>Lovelace</b>' },
    })),
  });
  await connected(member);
  await subscribed(member, ROOM);
  await consoleRow(page, 'member_added', (r) => r.kind === 'member_added' && r.user === 'ada-42');
  await openChannel(page, ROOM);
  await tableHas(page, '#members-table', 'ada-42');
  const members = await tableRows(page, '#members-table');
  await screenshot(page, 'channel', '#channels');
  member.disconnect();
  await tableHas(page, '#members-table', 'ada-42', false);
  await consoleRow(page, 'member_removed', (r) => r.kind === 'member_removed' && r.user === 'ada-42');
  return { members, members_after_leave: (await tableRows(page, '#members-table')).length };
}

async function checkHistoryAndCache(page) {
  const watcher = pusherClient();
  await connected(watcher);
  await subscribed(watcher, TICKER);
  await sdk.trigger(TICKER, 'price', { symbol: 'OVT', price: 42.5 });
  await openChannel(page, TICKER);
  await until(page, () => document.getElementById('channel-cache').textContent.includes('OVT'));
  const cache = await text(page, '#channel-cache');
  await openChannel(page, NEWS);
  await tableHas(page, '#history-table', 'dash-hello');
  const history = await tableRows(page, '#history-table');
  return { cache, history, injected_elements: await injected(page, '#channels') };
}

async function checkTestEvent(page) {
  const subscriber = pusherClient();
  await connected(subscriber);
  const inbox = record('form subscriber', await subscribed(subscriber, FORM));
  await page.fill('#trigger-channel', FORM);
  await page.fill('#trigger-event', 'form-test');
  await page.fill('#trigger-data', '{"from": "dashboard", "n": 7}');

  const declined = await submitConfirmed(page, '#trigger-form', false);
  await until(page, () => document.getElementById('trigger-result').textContent === 'Not sent.');

  const dialog = await submitConfirmed(page, '#trigger-form');
  const received = await inbox.waitEvent('form-test', WAIT);
  await until(page, () => document.getElementById('trigger-result').classList.contains('ok'));
  await sleep(300);
  const action = await consoleRow(
    page,
    'dashboard_action',
    (r) => r.kind === 'dashboard_action' && r.event === 'form-test',
  );
  return {
    declined_dialog: declined,
    dialog,
    received: received.data,
    deliveries: inbox.items.length,
    result: await text(page, '#trigger-result'),
    action,
  };
}

async function checkTerminate(page) {
  const client = pusherClient({ userAuthentication: sdkUserAuthentication(sdk, { id: 'term-7' }) });
  const errors = [];
  client.connection.bind('error', (error) => errors.push(errorCode(error)));
  await connected(client);
  client.signin();
  const signedIn = () => client.user.serverToUserChannel?.subscribed === true;
  await waitUntil('term-7 signed in', signedIn, WAIT);
  await page.fill('#terminate-user', 'term-7');
  const dialog = await submitConfirmed(page, '#terminate-form');
  await waitUntil('term-7 disconnected', () => client.connection.state === 'disconnected', WAIT);
  await until(page, () => document.getElementById('terminate-result').classList.contains('ok'));
  await consoleRow(page, 'terminated', (r) => r.kind === 'terminated' && r.user === 'term-7');
  return { dialog, errors, result: await text(page, '#terminate-result') };
}

scenario(
  'dashboard',
  async () => {
    check(PASSWORD, 'OVERTONE_DASHBOARD_PASSWORD is not set');
    const access = await checkAccess();
    const feed = readFeed();

    const page = await chromiumPage();
    await page.context().setHTTPCredentials({ username: USER, password: PASSWORD, origin: ORIGIN });
    await page.setViewportSize({ width: 1280, height: 900 });
    const problems = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    const traffic = recordTraffic(page);

    const loaded = await page.goto(PAGE, { timeout: ms(WAIT) });
    check(loaded.status() === 200, 'the dashboard page did not load', loaded.status());
    await until(page, () => document.getElementById('feed-state').textContent === 'live');

    const overview = await checkOverview(page);
    await screenshot(page, 'overview', '#overview');
    const consoleResult = await checkConsole(page);
    await screenshot(page, 'console', '#console');
    const presence = await checkPresence(page);
    const channel = await checkHistoryAndCache(page);
    const testEvent = await checkTestEvent(page);
    const terminate = await checkTerminate(page);
    await screenshot(page, 'actions', '#actions');
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, 'full');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'dark', '#overview');

    const html = await page.content();
    const bodies = await Promise.all(traffic.bodies);
    await sleep(500);
    const leaks = [
      ...bodies.filter((item) => item.body.includes(env.secret)).map((item) => item.url),
      ...(html.includes(env.secret) ? ['page DOM'] : []),
      ...(feed.text.includes(env.secret) ? ['feed'] : []),
    ];
    return {
      access,
      overview: overview.result,
      console: consoleResult,
      presence,
      channel,
      test_event: testEvent,
      terminate,
      secret_leaks: leaks,
      responses: bodies.map(({ url, status, type }) => ({ url, status, type })),
      body_errors: bodies.filter((item) => item.error).map((item) => `${item.url}: ${item.error}`),
      streams: traffic.streams,
      foreign_requests: traffic.requests.filter((url) => !url.startsWith(`${ORIGIN}/dashboard/`)),
      feed: {
        status: feed.status,
        content_type: feed.contentType,
        overview_events: (feed.text.match(/^event: overview$/gm) ?? []).length,
        console_events: (feed.text.match(/^event: console$/gm) ?? []).length,
        has_hello: feed.text.includes('dash-hello'),
      },
      problems,
    };
  },
  120000,
);
