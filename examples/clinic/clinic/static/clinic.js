// The clinic's pages: laravel-echo (window.Echo, built by overtone.broadcast.echo_script)
// for live updates, plain fetch() for actions. Every action works without realtime: the
// page then says "Realtime is off" and shows what the server answered.
//
// Nothing missed, nothing twice: echo_script installed overtone's recovery add-on (when
// it loaded) with the positions the page was rendered at, so after a network cut or a
// server restart the missed events arrive through the usual listeners. When they are gone,
// `overtone:resync` (on window, detail.channel) says so and the page reloads that channel's
// state. Chat lines (by message id) and status changes (by version) are keyed: an event
// that arrives twice, or that a reload already brought, is shown once.
(() => {
  'use strict';

  const data = JSON.parse(document.getElementById('page-data').textContent);
  const $ = (selector, root = document) => root.querySelector(selector);
  const echo = window.Echo && window.Echo.connector ? window.Echo : null;
  const pusher = echo ? echo.connector.pusher : null;
  const GRACE_MS = 3000; // how long "connecting…" may last before the page says "off"

  // -- connection status --------------------------------------------------------------------

  const badge = $('#realtime');
  const realtimeListeners = [];
  function showRealtime(state, text) {
    badge.dataset.state = state;
    badge.textContent = text;
    for (const listener of realtimeListeners) listener(state);
  }

  let gaveUp = false;
  function renderConnection() {
    const state = pusher.connection.state;
    if (state === 'connected') showRealtime('on', 'Realtime is on');
    else if (state === 'connecting' && !gaveUp) showRealtime('connecting', 'Realtime: connecting…');
    else showRealtime('off', 'Realtime is off: reload to see changes');
    badge.title = `pusher-js connection: ${state}`;
  }

  if (!data.configured) {
    showRealtime('disabled', 'Realtime is off (not configured)');
  } else if (!pusher) {
    showRealtime('off', 'Realtime is off (client libraries missing)');
  } else {
    pusher.connection.bind('state_change', renderConnection);
    pusher.connection.bind('error', () => {
      gaveUp = true;
      renderConnection();
    });
    setTimeout(() => {
      gaveUp = true;
      renderConnection();
    }, GRACE_MS);
    renderConnection();
  }

  // -- actions: JSON POSTs carrying X-Socket-ID, so broadcasts skip this page -------------

  async function post(url, body) {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    const socketId = echo ? echo.socketId() : null;
    if (socketId) headers['X-Socket-ID'] = socketId;
    const response = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof answer.detail === 'string' ? answer.detail : `HTTP ${response.status}`;
      throw new Error(detail);
    }
    return answer;
  }

  function report(element, ok, text) {
    element.dataset.ok = String(ok);
    element.textContent = text;
  }

  const liveNote = (answer) => (answer.broadcast ? '' : ' (not sent live: realtime is off)');

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  // What to reload when a channel's missed events are gone: channel name -> async function.
  const reloaders = new Map();
  async function resync(channel, attempt = 1) {
    const reload = reloaders.get(channel);
    if (!reload) return;
    try {
      await reload();
    } catch (error) {
      if (attempt < 5) setTimeout(() => resync(channel, attempt + 1), 1000 * attempt);
      else console.warn(`could not reload ${channel}: ${error.message}`);
    }
  }
  window.addEventListener('overtone:resync', (event) => resync(event.detail.channel));

  /** Insert `item` into `list` keeping the children ordered by `key(child)`. */
  function insertOrdered(list, item, key) {
    const next = [...list.children].find((child) => key(child) > key(item));
    list.insertBefore(item, next || null);
  }

  // -- appointments ---------------------------------------------------------------------------

  const versionOf = (item) => Number(item.dataset.version);

  function addChange(card, change, source) {
    const list = $('.changes', card);
    if (!list || list.querySelector(`li[data-version="${change.version}"]`)) return;
    const item = document.createElement('li');
    item.dataset.version = String(change.version);
    item.dataset.source = source;
    item.textContent = change.status_label;
    insertOrdered(list, item, versionOf);
  }

  /** Show an appointment (and its `changes`) unless the page already shows a later version. */
  function showAppointment(appointment, changes, source) {
    for (const card of document.querySelectorAll(`[data-appointment="${appointment.id}"]`)) {
      for (const change of changes) addChange(card, change, source);
      const status = $('.status', card);
      if (versionOf(status) >= appointment.version) continue; // shown already, or older
      status.dataset.version = String(appointment.version);
      status.dataset.status = appointment.status;
      status.textContent = appointment.status_label;
      card.classList.remove('flash');
      void card.offsetWidth; // restart the highlight animation
      card.classList.add('flash');
    }
  }

  for (const button of document.querySelectorAll('[data-set-status]')) {
    button.addEventListener('click', async () => {
      const card = button.closest('[data-appointment]');
      const result = $('.status-result', card);
      result.textContent = 'Saving…';
      try {
        const url = `/appointments/${card.dataset.appointment}/status`;
        const answer = await post(url, { status: button.dataset.setStatus });
        showAppointment(answer.appointment, [answer.change], 'sent');
        report(result, true, `Saved: ${answer.appointment.status_label}${liveNote(answer)}`);
      } catch (error) {
        report(result, false, `Not saved: ${error.message}`);
      }
    });
  }

  // -- notifications (user sign-in, then send_to_user) ----------------------------------------

  const notifications = $('#notifications');
  function addNotification(note, source) {
    if (notifications.querySelector(`li[data-note-id="${note.id}"]`)) return; // shown already
    $('.empty', notifications)?.remove();
    const item = document.createElement('li');
    item.dataset.noteId = String(note.id);
    item.dataset.source = source;
    const sender = document.createElement('strong');
    sender.textContent = note.sender;
    item.append(sender, `: ${note.text}`);
    insertOrdered(notifications, item, (li) => -Number(li.dataset.noteId)); // newest first
  }

  const notifyState = $('#notify-state');
  function showNotifyState(state, text) {
    notifyState.dataset.state = state;
    notifyState.textContent = text;
  }

  if (pusher && data.user) {
    for (const patientId of data.patients || []) {
      echo.private(`patient.${patientId}`).listen('.appointment.status', (event) => {
        showAppointment(event.appointment, [event.change], 'live');
      });
      reloaders.set(`private-patient.${patientId}`, async () => {
        const answer = await getJson(`/patients/${encodeURIComponent(patientId)}/appointments`);
        for (const appointment of answer.appointments) {
          showAppointment(appointment, appointment.changes, 'reload');
        }
      });
    }
    const ownChannel = `#server-to-user-${data.user.id}`;
    pusher.user.bind('notification', (event) => addNotification(event.notification, 'live'));
    reloaders.set(ownChannel, async () => {
      const answer = await getJson('/notifications');
      for (const note of answer.notifications) addNotification(note, 'reload');
    });
    pusher.user.bind('pusher:signin_error', () => showNotifyState('error', '(sign-in refused)'));
    pusher.connection.bind('message', (message) => {
      if (message.event === 'pusher_internal:subscription_succeeded' && message.channel === ownChannel) {
        showNotifyState('live', '(live)');
      }
    });
    pusher.connection.bind('state_change', ({ current }) => {
      if (current !== 'connected') showNotifyState('off', '(not live)');
    });
    realtimeListeners.push((state) => {
      if (state === 'off') showNotifyState('off', '(not live)');
    });
    if (badge.dataset.state === 'off') showNotifyState('off', '(not live)');
    echo.connector.signin(); // POST /broadcasting/user-auth, then pusher:signin
  } else if (notifyState) {
    showNotifyState('off', '(not live)');
  }

  // -- the consultation room: presence, typing, chat ------------------------------------------

  if (data.room) {
    const memberList = $('#members');
    const members = new Map();
    const typing = new Map();
    const typingLine = $('#typing');
    const chatLog = $('#chat-log');
    const chatForm = $('#chat-form');
    const chatText = $('#chat-text');
    const chatResult = $('#chat-result');

    const renderMembers = (state) => {
      memberList.dataset.state = state;
      memberList.replaceChildren();
      if (state !== 'live') {
        const item = document.createElement('li');
        item.className = 'muted';
        item.textContent = 'Unknown while realtime is off.';
        memberList.append(item);
        return;
      }
      for (const member of [...members.values()].sort((a, b) => a.id.localeCompare(b.id))) {
        const item = document.createElement('li');
        item.dataset.userId = member.id;
        item.textContent = `${member.name} (${member.role})${member.id === data.user.id ? ' · you' : ''}`;
        memberList.append(item);
      }
    };
    const renderTyping = () => {
      const names = [...typing.entries()].map(([id, who]) => members.get(id)?.name || who.name);
      typingLine.textContent = names.length ? `${names.join(', ')} is typing…` : '';
    };
    const stopTyping = (userId) => {
      clearTimeout(typing.get(userId)?.timer);
      typing.delete(userId);
      renderTyping();
    };
    const addMessage = (message, source) => {
      if (chatLog.querySelector(`li[data-message-id="${message.id}"]`)) return; // shown already
      const item = document.createElement('li');
      item.dataset.messageId = String(message.id);
      item.dataset.source = source;
      const name = document.createElement('strong');
      name.textContent = message.name;
      item.append(name, ` ${message.text}`);
      insertOrdered(chatLog, item, (li) => Number(li.dataset.messageId));
      item.scrollIntoView({ block: 'nearest' });
    };
    reloaders.set(`presence-consultation.${data.room}`, async () => {
      const answer = await getJson(`/consultation/${encodeURIComponent(data.room)}/messages`);
      for (const message of answer.messages) addMessage(message, 'reload');
    });

    let room = null;
    if (pusher) {
      room = echo
        .join(`consultation.${data.room}`)
        .here((users) => {
          members.clear();
          for (const user of users) members.set(user.id, user);
          renderMembers('live');
        })
        .joining((user) => {
          members.set(user.id, user);
          renderMembers('live');
        })
        .leaving((user) => {
          members.delete(user.id);
          stopTyping(user.id);
          renderMembers('live');
        })
        .listen('.chat.message', (event) => {
          stopTyping(event.message.user_id);
          addMessage(event.message, 'live');
        })
        .listenForWhisper('typing', (event) => {
          if (!event || event.id === data.user.id) return;
          clearTimeout(typing.get(event.id)?.timer);
          const timer = setTimeout(() => stopTyping(event.id), 3000);
          typing.set(event.id, { timer, name: String(event.name || event.id) });
          renderTyping();
        })
        .error(() => renderMembers('error'));
    }
    const membersFollow = (state) => {
      if (state === 'off' || state === 'disabled') renderMembers('off');
    };
    realtimeListeners.push(membersFollow);
    membersFollow(badge.dataset.state);

    let lastWhisper = 0;
    chatText.addEventListener('input', () => {
      const now = Date.now();
      if (!room || !chatText.value.trim() || now - lastWhisper < 1000) return;
      lastWhisper = now; // at most one client event a second (overtone allows 10)
      room.whisper('typing', { id: data.user.id, name: data.user.name });
    });

    chatForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = chatText.value.trim();
      if (!text) return;
      try {
        const answer = await post(`/consultation/${data.room}/messages`, { text });
        addMessage(answer.message, 'sent'); // the broadcast skipped this page (X-Socket-ID)
        chatText.value = '';
        report(chatResult, true, answer.broadcast ? '' : 'Sent (not live: realtime is off)');
      } catch (error) {
        report(chatResult, false, `Not sent: ${error.message}`);
      }
    });
  }

  // -- the doctor's notification form -----------------------------------------------------------

  const notifyForm = $('#notify-form');
  if (notifyForm) {
    notifyForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = $('#notify-text');
      const result = $('#notify-result');
      try {
        const body = { user_id: notifyForm.dataset.userId, text: input.value.trim() };
        const answer = await post('/notifications', body);
        input.value = '';
        report(result, true, `Sent${liveNote(answer)}`);
      } catch (error) {
        report(result, false, `Not sent: ${error.message}`);
      }
    });
  }
})();
