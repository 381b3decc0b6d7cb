// The clinic example (examples/clinic) in headless Chromium: a doctor and a patient, each in
// their own browser (fresh user-data dir), meet in consultation room r1 of the FastAPI app.
//
// Live: presence lists (and a departure), typing whispers, chat that skips the sender's own
// socket, a live appointment status change, a notification through user sign-in. Stage
// "live-done": the Python side stops overtone. Fail-soft: the pages still render, say
// realtime is off, and actions still succeed; the same on a second app without
// REVERB_APP_KEY.
//
// Reads CLINIC_URL (the app), CLINIC_OFF_URL (the app without REVERB_APP_KEY),
// CLINIC_WORK_DIR (screenshots and browser profiles), plus lib.mjs's OVERTONE_* variables.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { E2E_DIR, check, env, ms, onExit, scenario, sleep, stage } from '../e2e/scenarios/lib.mjs';

const require = createRequire(path.join(E2E_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const APP = process.env.CLINIC_URL;
const OFF_APP = process.env.CLINIC_OFF_URL;
const WORK = process.env.CLINIC_WORK_DIR;
const ROOM = '/consultation/r1';
const WAIT = 10000;
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

/** Record a page's uncaught errors, console errors and WebSocket URLs into a new log. */
function watch(page) {
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
async function browser(label) {
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

/** Wait for `predicate(arg)` in the page; on timeout say what and show `probe()`'s value. */
async function until(person, what, predicate, arg, probe) {
  try {
    await person.page.waitForFunction(predicate, arg, { timeout: ms(WAIT) });
  } catch (error) {
    const seen = probe ? JSON.stringify(await probe()) : '';
    throw new Error(`${person.label}: ${what}: ${error.message.split('\n')[0]} ${seen}`);
  }
}

const badge = (person) =>
  person.page.$eval('#realtime', (el) => ({ state: el.dataset.state, text: el.textContent }));

const realtime = (person, states) =>
  until(
    person,
    `realtime ${states}`,
    (wanted) => wanted.includes(document.getElementById('realtime').dataset.state),
    states,
    () => badge(person),
  );

const memberIds = (person) =>
  person.page.$$eval('#members li[data-user-id]', (items) => items.map((i) => i.dataset.userId));

const members = (person, ids) =>
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

const textOf = (person, selector) => person.page.$eval(selector, (el) => el.textContent.trim());

const has = (person, selector, text) =>
  until(
    person,
    `${selector} containing ${JSON.stringify(text)}`,
    ([sel, wanted]) =>
      [...document.querySelectorAll(sel)].some((el) => el.textContent.includes(wanted)),
    [selector, text],
    () => person.page.$$eval(selector, (els) => els.map((el) => el.textContent.trim())),
  );

/** The chat lines containing `text`: their sources (sent, live, history). */
const chatLines = (person, text) =>
  person.page.$$eval(
    '#chat-log li',
    (items, wanted) => items.filter((i) => i.textContent.includes(wanted)).map((i) => i.dataset.source),
    text,
  );

/** Click and return the JSON answer and request headers of the POST it causes. */
async function action(person, urlEnd, act) {
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

const setStatus = (person, status) =>
  action(person, '/appointments/a1/status', () => person.page.click(`[data-set-status="${status}"]`));

async function chat(person, text) {
  await person.page.fill('#chat-text', text);
  return action(person, '/messages', () => person.page.click('#chat-form button[type="submit"]'));
}

const shot = (person, name) => person.page.screenshot({ path: path.join(WORK, `${name}.png`), fullPage: true });

async function live(doctor, patient) {
  await doctor.page.goto(`${APP}/login?as=doctor&next=${ROOM}`);
  await realtime(doctor, ['on']);
  await members(doctor, ['d1']);
  await patient.page.goto(`${APP}/login?as=patient&next=${ROOM}`);
  await realtime(patient, ['on']);
  await members(patient, ['d1', 'p1']);
  await members(doctor, ['d1', 'p1']);
  const presence = { doctor: await memberIds(doctor), patient: await memberIds(patient) };
  for (const person of [doctor, patient]) {
    await until(person, 'signed in for notifications', () =>
      document.getElementById('notify-state').dataset.state === 'live',
    );
  }

  // Typing (client-typing whispers on the presence channel), then the chat.
  await doctor.page.fill('#chat-text', 'Hello Jo');
  await has(patient, '#typing', 'Dr. Ana Souza is typing…');
  const typingSeenByPatient = await textOf(patient, '#typing');
  const hello = 'Hello João, how are you feeling today?';
  const sent = await chat(doctor, hello);
  await has(patient, '#chat-log li', hello);
  await until(patient, 'typing cleared by the message', () => !document.getElementById('typing').textContent);

  await patient.page.fill('#chat-text', 'Much bet');
  await has(doctor, '#typing', 'João Lima is typing…');
  const typingSeenByDoctor = await textOf(doctor, '#typing');
  const reply = 'Much better, thank you!';
  const replied = await chat(patient, reply);
  await has(doctor, '#chat-log li', reply);
  await sleep(500); // a broadcast that wrongly reached the sender would have arrived by now
  const chatSources = {
    doctor_hello: await chatLines(doctor, hello),
    patient_hello: await chatLines(patient, hello),
    doctor_reply: await chatLines(doctor, reply),
    patient_reply: await chatLines(patient, reply),
  };
  const sockets = {
    doctor: await doctor.page.evaluate(() => window.Echo.socketId()),
    patient: await patient.page.evaluate(() => window.Echo.socketId()),
  };

  // The doctor changes the appointment; the patient's page follows live.
  const status = await setStatus(doctor, 'in_progress');
  await until(patient, 'status in_progress', () =>
    document.querySelector('#appointment-a1 .status').dataset.status === 'in_progress',
  );
  const patientStatus = await textOf(patient, '#appointment-a1 .status');
  const doctorResult = await textOf(doctor, '#appointment-a1 .status-result');

  // A notification to the signed-in patient (send_to_user), not to the doctor.
  const note = 'Your prescription is ready at the front desk.';
  await doctor.page.fill('#notify-text', note);
  const notified = await action(doctor, '/notifications', () =>
    doctor.page.click('#notify-form button[type="submit"]'),
  );
  await has(patient, '#notifications li[data-source="live"]', note);
  await sleep(300);
  const doctorLiveNotes = await doctor.page.$$eval('#notifications li[data-source="live"]', (l) => l.length);
  await shot(doctor, 'doctor-live');
  await shot(patient, 'patient-live');

  // The patient leaves the room: the doctor's presence list follows.
  await patient.page.goto(`${APP}/`);
  await members(doctor, ['d1']);
  const afterLeaving = await memberIds(doctor);
  await shot(patient, 'patient-home');
  const patientHome = {
    status: await textOf(patient, '#appointment-a1 .status'),
    notifications: await patient.page.$$eval('#notifications li', (l) => l.map((i) => i.textContent.trim())),
  };

  return {
    presence,
    after_leaving: afterLeaving,
    typing: { patient_saw: typingSeenByPatient, doctor_saw: typingSeenByDoctor },
    chat: { sent, replied, sources: chatSources },
    sockets,
    status: { answer: status, patient_saw: patientStatus, doctor_result: doctorResult },
    notification: { answer: notified, doctor_live_notes: doctorLiveNotes },
    patient_home: patientHome,
    websockets: { doctor: [...doctor.log.sockets], patient: [...patient.log.sockets] },
    problems: [...doctor.log.errors, ...doctor.log.console, ...patient.log.errors, ...patient.log.console],
  };
}

async function failSoft(doctor, patient) {
  // The open page notices the server going away.
  await realtime(doctor, ['off']);
  const openPage = await badge(doctor);
  await doctor.page.reload();
  await realtime(doctor, ['off']);
  const heading = await textOf(doctor, 'h1');
  const status = await setStatus(doctor, 'completed');
  const statusResult = await textOf(doctor, '#appointment-a1 .status-result');
  const message = 'Are you still there?';
  const sent = await chat(doctor, message);
  const chatResult = await textOf(doctor, '#chat-result');
  const doctorLines = await chatLines(doctor, message);

  await patient.page.goto(`${APP}${ROOM}`);
  await realtime(patient, ['off']);
  const patientView = {
    badge: await badge(patient),
    status: await textOf(patient, '#appointment-a1 .status'),
    chat: await patient.page.$$eval('#chat-log li', (l) => l.map((i) => i.textContent.trim())),
    members: await textOf(patient, '#members'),
    notify_state: await textOf(patient, '#notify-state'),
  };
  await shot(doctor, 'doctor-off');
  await shot(patient, 'patient-off');
  return {
    open_page: openPage,
    reloaded: await badge(doctor),
    heading,
    status: { answer: status, result: statusResult },
    chat: { answer: sent, result: chatResult, doctor_lines: doctorLines },
    patient: patientView,
    page_errors: [...doctor.log.errors, ...patient.log.errors],
  };
}

/** The app without REVERB_APP_KEY: no Echo at all, the same pages and actions. */
async function notConfigured(doctor) {
  const page = await doctor.context.newPage();
  const person = { label: 'doctor (not configured)', context: doctor.context, page, log: watch(page) };
  await page.goto(`${OFF_APP}/login?as=doctor&next=${ROOM}`);
  await realtime(person, ['disabled']);
  const status = await setStatus(person, 'confirmed');
  const sent = await chat(person, 'Realtime is not configured here.');
  await shot(person, 'doctor-not-configured');
  return {
    badge: await badge(person),
    echo: await page.evaluate(() => window.Echo),
    status,
    status_result: await textOf(person, '#appointment-a1 .status-result'),
    chat: sent,
    websockets: person.log.sockets,
    page_errors: person.log.errors,
  };
}

scenario(
  'clinic_consultation',
  async () => {
    check(APP && OFF_APP && WORK, 'CLINIC_URL, CLINIC_OFF_URL and CLINIC_WORK_DIR are required');
    const doctor = await browser('doctor');
    const patient = await browser('patient');
    const liveResult = await live(doctor, patient);
    await stage('live-done', { overtone_port: env.port }, 30000);
    const failSoftResult = await failSoft(doctor, patient);
    const notConfiguredResult = await notConfigured(doctor);
    return { live: liveResult, fail_soft: failSoftResult, not_configured: notConfiguredResult };
  },
  150000,
);
