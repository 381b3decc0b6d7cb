// Shared by the clinic drivers: one headless Chromium per person, waits that say what they
// waited for, and the page's actions (status buttons, chat) with the answers they got.
//
// Reads CLINIC_WORK_DIR (screenshots and browser profiles) and OVERTONE_CHROMIUM.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { E2E_DIR, ms, onExit } from '../e2e/scenarios/lib.mjs';

const require = createRequire(path.join(E2E_DIR, 'package.json'));
const { chromium } = require('playwright-core');

export const WORK = process.env.CLINIC_WORK_DIR;
export const ROOM = '/consultation/r1';
export const WAIT = 10000;
export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Record a page's uncaught errors, console errors and WebSocket URLs into a new log. */
export function watch(page) {
  const log = { errors: [], console: [], sockets: [] };
  page.on('pageerror', (error) => log.errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') log.console.push(message.text());
  });
  page.on('websocket', (socket) => log.sockets.push(socket.url()));
  page.setDefaultTimeout(ms(WAIT));
  return log;
}

/** One person's browser: a persistent context on a new, empty user-data dir. */
export async function browser(label) {
  const userDataDir = mkdtempSync(path.join(WORK, `chromium-${label}-`));
  onExit(() => rmSync(userDataDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.OVERTONE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    timeout: ms(15000),
    viewport: { width: 1100, height: 760 },
  });
  onExit(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  return { label, context, page, log: watch(page) };
}

/** Wait for `predicate(arg)` in the page (`wait` ms); on timeout say what and show `probe()`. */
export async function until(person, what, predicate, arg, probe, wait = WAIT) {
  try {
    await person.page.waitForFunction(predicate, arg, { timeout: ms(wait) });
  } catch (error) {
    const seen = probe ? JSON.stringify(await probe()) : '';
    throw new Error(`${person.label}: ${what}: ${error.message.split('\n')[0]} ${seen}`);
  }
}

export const badge = (person) =>
  person.page.$eval('#realtime', (el) => ({ state: el.dataset.state, text: el.textContent }));

export const realtime = (person, states) =>
  until(
    person,
    `realtime ${states}`,
    (wanted) => wanted.includes(document.getElementById('realtime').dataset.state),
    states,
    () => badge(person),
  );

export const memberIds = (person) =>
  person.page.$$eval('#members li[data-user-id]', (items) => items.map((i) => i.dataset.userId));

export const members = (person, ids) =>
  until(
    person,
    `members ${ids}`,
    (wanted) =>
      [...document.querySelectorAll('#members li[data-user-id]')]
        .map((item) => item.dataset.userId)
        .join(',') === wanted,
    ids.join(','),
    () => memberIds(person),
  );

export const textOf = (person, selector) => person.page.$eval(selector, (el) => el.textContent.trim());

export const has = (person, selector, text) =>
  until(
    person,
    `${selector} containing ${JSON.stringify(text)}`,
    ([sel, wanted]) =>
      [...document.querySelectorAll(sel)].some((el) => el.textContent.includes(wanted)),
    [selector, text],
    () => person.page.$$eval(selector, (els) => els.map((el) => el.textContent.trim())),
  );

/** The chat lines containing `text`: their sources (sent, live, history). */
export const chatLines = (person, text) =>
  person.page.$$eval(
    '#chat-log li',
    (items, wanted) => items.filter((i) => i.textContent.includes(wanted)).map((i) => i.dataset.source),
    text,
  );

/** Click and return the JSON answer and request headers of the POST it causes. */
export async function action(person, urlEnd, act) {
  const [response] = await Promise.all([
    person.page.waitForResponse((r) => r.url().endsWith(urlEnd) && r.request().method() === 'POST'),
    act(),
  ]);
  return {
    status: response.status(),
    body: await response.json(),
    socket_header: response.request().headers()['x-socket-id'] ?? null,
  };
}

export const setStatus = (person, status) =>
  action(person, '/appointments/a1/status', () => person.page.click(`[data-set-status="${status}"]`));

export async function chat(person, text) {
  await person.page.fill('#chat-text', text);
  return action(person, '/messages', () => person.page.click('#chat-form button[type="submit"]'));
}

export const shot = (person, name) => person.page.screenshot({ path: path.join(WORK, `${name}.png`), fullPage: true });
