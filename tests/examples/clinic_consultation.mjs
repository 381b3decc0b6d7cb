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
import { check, env, scenario, sleep, stage } from '../e2e/scenarios/lib.mjs';

import {
  ROOM,
  WORK,
  action,
  badge,
  browser,
  chat,
  chatLines,
  has,
  memberIds,
  members,
  realtime,
  setStatus,
  shot,
  textOf,
  until,
  watch,
} from './clinic_lib.mjs';

const APP = process.env.CLINIC_URL;
const OFF_APP = process.env.CLINIC_OFF_URL;

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
