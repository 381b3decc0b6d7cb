// The clinic example in headless Chromium: nothing missed, nothing twice, while the
// patient's network is cut and overtone restarts.
//
// The doctor opens room r1 at CLINIC_URL; the patient opens it at CLINIC_PATIENT_URL, the
// same app and overtone reached through a proxy the Python side can cut. The doctor changes
// the appointment and chats before, during a network cut of the patient (stage "cut", until
// stage "restore"), during a restart of overtone (stage "restart", until "restarted") and
// after it, and sends the patient notifications. Once back from the cut the patient's page
// must show what it missed (replayed by the recovery add-on, no reload); at the end it must
// show every chat line, status change and notification exactly once, in order, whether it got
// them live, replayed, or by reloading after `overtone:resync`.
//
// Reads CLINIC_URL, CLINIC_PATIENT_URL and CLINIC_WORK_DIR, plus lib.mjs's OVERTONE_* variables.
import { check, scenario, sleep, stage } from '../e2e/scenarios/lib.mjs';

import { ROOM, action, browser, chat, members, realtime, setStatus, shot, until } from './clinic_lib.mjs';

const APP = process.env.CLINIC_URL;
const PATIENT_APP = process.env.CLINIC_PATIENT_URL;
const CONVERGE = 60000; // pusher-js retries with a back-off: allow a few rounds

/** What the patient's page shows: chat lines and status changes, in page order. */
const patientView = (patient) =>
  patient.page.evaluate(() => ({
    chat: [...document.querySelectorAll('#chat-log li')].map((li) => ({
      id: Number(li.dataset.messageId),
      text: li.textContent.trim(),
      source: li.dataset.source,
    })),
    changes: [...document.querySelectorAll('#appointment-a1 .changes li')].map((li) => ({
      version: Number(li.dataset.version),
      label: li.textContent.trim(),
      source: li.dataset.source,
    })),
    notes: [...document.querySelectorAll('#notifications li[data-note-id]')].map((li) => ({
      id: Number(li.dataset.noteId),
      text: li.textContent.trim(),
      source: li.dataset.source,
    })),
    status: document.querySelector('#appointment-a1 .status').dataset.status,
    version: Number(document.querySelector('#appointment-a1 .status').dataset.version),
    resyncs: [...window.resyncsSeen],
    recovery: Boolean(window.Echo && window.Echo.connector.pusher.__overtoneRecovery),
    state: window.Echo ? window.Echo.connector.pusher.connection.state : null,
  }));

scenario(
  'clinic_recovery',
  async () => {
    check(APP && PATIENT_APP, 'CLINIC_URL and CLINIC_PATIENT_URL are required');
    const doctor = await browser('doctor');
    const patient = await browser('patient');
    await patient.page.addInitScript(() => {
      window.resyncsSeen = [];
      window.addEventListener('overtone:resync', (event) => window.resyncsSeen.push(event.detail.channel));
    });
    const sockets = [];
    patient.page.on('websocket', (socket) => {
      const entry = { opened: Date.now(), closed: null };
      sockets.push(entry);
      socket.on('close', () => (entry.closed = Date.now()));
    });

    await doctor.page.goto(`${APP}/login?as=doctor&next=${ROOM}`);
    await patient.page.goto(`${PATIENT_APP}/login?as=patient&next=${ROOM}`);
    for (const person of [doctor, patient]) {
      await realtime(person, ['on']);
      await members(person, ['d1', 'p1']);
    }
    const installed = (await patientView(patient)).recovery;

    const sent = []; // what the doctor did, in order, with the app's answers
    const answers = [];
    async function say(text) {
      const answer = await chat(doctor, text);
      check(answer.status === 200, `chat ${text}`, answer);
      sent.push({ kind: 'chat', id: answer.body.message.id, text: answer.body.message.text });
      answers.push({ what: text, broadcast: answer.body.broadcast });
    }
    async function change(status) {
      const answer = await setStatus(doctor, status);
      check(answer.status === 200, `status ${status}`, answer);
      const made = answer.body.change;
      sent.push({ kind: 'status', version: made.version, label: made.status_label });
      answers.push({ what: status, broadcast: answer.body.broadcast });
    }

    async function notify(text) {
      await doctor.page.fill('#notify-text', text);
      const answer = await action(doctor, '/notifications', () =>
        doctor.page.click('#notify-form button[type="submit"]'),
      );
      check(answer.status === 200, `notify ${text}`, answer);
      sent.push({ kind: 'note', id: answer.body.notification.id, text: answer.body.notification.text });
      answers.push({ what: text, broadcast: answer.body.broadcast });
    }
    const notesOf = (view) => view.notes.map((note) => note.id).join();
    const sentNotes = () =>
      sent
        .filter((s) => s.kind === 'note')
        .map((s) => s.id)
        .reverse()
        .join();

    // Live, before anything goes wrong.
    await change('confirmed');
    await say('Good morning, João.');
    await until(patient, 'the first line live', () => document.querySelectorAll('#chat-log li').length === 1);

    // The patient's network goes away; the doctor goes on.
    await stage('cut', {}, 30000);
    await realtime(patient, ['connecting', 'off']);
    await change('waiting');
    await say('Please measure your blood pressure now.');
    await say('Sit down for five minutes first.');
    await change('in_progress');
    await say('I can see your last results.');
    await notify('Your lab results are in.');

    // The network comes back: the page gets what it missed, without reloading.
    await stage('restore', {}, 60000);
    const missed = sent.filter((s) => s.kind === 'chat').map((s) => s.id);
    await until(
      patient,
      'the lines sent during the cut',
      (ids) => [...document.querySelectorAll('#chat-log li')].map((li) => Number(li.dataset.messageId)).join() === ids.join(),
      missed,
      () => patientView(patient),
      CONVERGE,
    );
    await until(patient, 'the last change of the cut', () =>
      document.querySelector('#appointment-a1 .status').dataset.status === 'in_progress',
    );
    await until(
      patient,
      'the notification of the cut',
      (ids) => [...document.querySelectorAll('#notifications li[data-note-id]')].map((li) => li.dataset.noteId).join() === ids,
      sentNotes(),
      () => patientView(patient),
    );
    const afterCut = await patientView(patient);

    // overtone restarts; the doctor goes on.
    await stage('restart', {}, 60000);
    for (let n = 1; n <= 9; n += 1) {
      await say(`During the restart, line ${n}.`);
      if (n % 3 === 0) await change(n % 2 ? 'waiting' : 'in_progress');
      if (n === 5) await notify('Your prescription is ready.');
      await sleep(500);
    }
    await stage('restarted', {}, 90000);

    // After it all.
    await change('completed');
    await say('Take care, see you next month.');

    const chatIds = sent.filter((s) => s.kind === 'chat').map((s) => s.id);
    const versions = sent.filter((s) => s.kind === 'status').map((s) => s.version);
    await until(
      patient,
      'every line and change',
      ([ids, vs]) =>
        [...document.querySelectorAll('#chat-log li')].map((li) => Number(li.dataset.messageId)).join() ===
          ids.join() &&
        [...document.querySelectorAll('#appointment-a1 .changes li')].map((li) => Number(li.dataset.version)).join() ===
          vs.join(),
      [chatIds, versions],
      () => patientView(patient),
      CONVERGE,
    );
    await until(
      patient,
      'every notification',
      (ids) => [...document.querySelectorAll('#notifications li[data-note-id]')].map((li) => li.dataset.noteId).join() === ids,
      sentNotes(),
      () => patientView(patient),
      CONVERGE,
    );
    await sleep(1000); // anything arriving twice would show by now
    await shot(doctor, 'recovery-doctor');
    await shot(patient, 'recovery-patient');
    return {
      installed,
      after_cut: afterCut,
      sent,
      answers,
      patient: await patientView(patient),
      doctor_chat: await doctor.page.$$eval('#chat-log li', (l) => l.map((li) => Number(li.dataset.messageId))),
      sockets,
      problems: [...doctor.log.errors, ...patient.log.errors],
      console: [...doctor.log.console, ...patient.log.console],
    };
  },
  240000,
);
