// overtone dashboard: overview, channels, debug console and actions of one overtone server.
//
// Plain JavaScript with no dependencies. Every URL is relative to the page, so the dashboard
// works under any path prefix. Text that comes from the server (channel names, event names,
// event data, user info) is only ever written with textContent or as an attribute value.
'use strict';

(() => {
  const SERIES_LENGTH = 300; // samples kept per graph: one a second, five minutes
  const CONSOLE_ROWS = 1000; // console entries kept (and rows in the page)
  const PAUSE_BUFFER = 20000; // entries buffered while the console is paused
  const CHANNELS_REFRESH_MS = 3000;
  const FEED_STALE_MS = 5000;
  const CACHE_CHANNEL = /^(private-encrypted-|private-|presence-)?cache-/;
  const GRAPH_FORMATS = { 'graph-connections': formatCount, 'graph-bytes': formatBytes };
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const GRAPH_WIDTH = 300;
  const GRAPH_HEIGHT = 100;

  const ERROR_NAMES = {
    4000: 'SSL only',
    4001: 'App does not exist',
    4003: 'App disabled',
    4004: 'Over connection quota',
    4005: 'Path not found',
    4006: 'Invalid version format',
    4007: 'Unsupported protocol version',
    4008: 'No protocol version',
    4009: 'Unauthorized',
    4100: 'Over capacity',
    4200: 'Generic reconnect',
    4201: 'Pong not received',
    4202: 'Closed after inactivity',
    4301: 'Client event rate limit',
  };

  const state = {
    overview: null,
    app: null,
    series: { t: [], apps: {} },
    lastFeedMessage: 0,
    channel: null, // name of the channel shown in the detail view
  };

  const consoleState = {
    entries: [], // oldest first, at most CONSOLE_ROWS
    buffer: [], // entries received while paused
    overflow: 0, // entries that did not fit in the pause buffer
    paused: false,
    dropped: 0, // entries the server did not make (its count since it started)
    droppedAtClear: 0,
    lastSeq: new Map(), // node id -> last entry number seen (a reopened feed repeats some)
  };

  // ---------------------------------------------------------------- small helpers

  const $ = (id) => document.getElementById(id);

  /** A new element with an optional class and text (always set as text, never parsed). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attributes = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  const isNumber = (value) => typeof value === 'number' && Number.isFinite(value);

  function formatCount(value) {
    return isNumber(value) ? Math.round(value).toLocaleString('en') : '-';
  }

  function formatRate(value) {
    if (!isNumber(value)) return '-';
    if (value === 0) return '0';
    if (value < 10) return value.toFixed(1);
    return Math.round(value).toLocaleString('en');
  }

  function formatBytes(value) {
    if (!isNumber(value)) return '-';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let amount = value;
    let unit = 0;
    while (amount >= 1024 && unit < units.length - 1) {
      amount /= 1024;
      unit += 1;
    }
    const digits = unit === 0 || amount >= 100 ? 0 : 1;
    return `${amount.toFixed(digits)} ${units[unit]}`;
  }

  function formatMs(value) {
    if (!isNumber(value)) return '-';
    return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
  }

  function formatDuration(seconds) {
    if (!isNumber(seconds)) return '';
    const total = Math.floor(seconds);
    const days = Math.floor(total / 86400);
    const hours = Math.floor((total % 86400) / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    if (days > 0) return `${days} d ${hours} h`;
    if (hours > 0) return `${hours} h ${String(minutes).padStart(2, '0')} min`;
    if (minutes > 0) return `${minutes} min ${String(total % 60).padStart(2, '0')} s`;
    return `${total} s`;
  }

  function formatTime(epochSeconds) {
    if (!isNumber(epochSeconds)) return '';
    const date = new Date(epochSeconds * 1000);
    const pad = (n, width = 2) => String(n).padStart(width, '0');
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(
      date.getMilliseconds(),
      3,
    )}`;
  }

  /** Any JSON value as display text: strings as they are, the rest as compact JSON. */
  function asText(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'string') return value;
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }

  /** Pretty JSON for a string that holds JSON (event data usually does), else the string. */
  function prettyData(value) {
    if (typeof value === 'string') {
      try {
        return JSON.stringify(JSON.parse(value), null, 2);
      } catch {
        return value;
      }
    }
    return value === null || value === undefined ? '' : JSON.stringify(value, null, 2);
  }

  /** An event frame as indented JSON, its `data` string shown as the JSON it holds. */
  function prettyEvent(frame) {
    if (frame === null || typeof frame !== 'object' || typeof frame.data !== 'string') {
      return prettyData(frame);
    }
    try {
      return JSON.stringify({ ...frame, data: JSON.parse(frame.data) }, null, 2);
    } catch {
      return prettyData(frame);
    }
  }

  /** Replace a table body's rows; each row is a list of cells (text, or {text, className}). */
  function fillTable(tbody, rows, emptyNote) {
    const fragment = document.createDocumentFragment();
    for (const cells of rows) {
      const tr = el('tr');
      for (const cell of cells) {
        const spec = cell !== null && typeof cell === 'object' ? cell : { text: cell };
        tr.append(el('td', spec.className, spec.text));
      }
      fragment.append(tr);
    }
    tbody.replaceChildren(fragment);
    tbody.closest('table').hidden = rows.length === 0;
    if (emptyNote) emptyNote.hidden = rows.length > 0;
  }

  /**
   * `task` wrapped so that only one run is in flight: a call during a run starts one more run
   * after it (so the latest filter or selection is always fetched), further calls add nothing.
   */
  function oneAtATime(task) {
    let running = false;
    let again = false;
    const run = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        await task();
      } finally {
        running = false;
      }
      if (again) {
        again = false;
        run();
      }
    };
    return run;
  }

  function showNotice(message) {
    const notice = $('notice');
    notice.textContent = message;
    notice.hidden = !message;
  }

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function readBody(response) {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return { error: text.slice(0, 200) };
    }
  }

  async function request(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { cache: 'no-store', credentials: 'same-origin', ...options });
    } catch (error) {
      throw new ApiError(0, `the server did not answer (${error.message})`);
    }
    const body = await readBody(response);
    if (response.status === 401) {
      showNotice('The server refused the credentials (401). Reload the page to sign in again.');
    }
    if (!response.ok) {
      const reason = body && typeof body.error === 'string' ? body.error : response.statusText;
      throw new ApiError(response.status, `${response.status}: ${reason}`);
    }
    return body;
  }

  const getJson = (path) => request(path, { headers: { Accept: 'application/json' } });

  const postJson = (path, payload) =>
    request(path, {
      method: 'POST',
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/json',
        'X-Overtone-Dashboard': '1',
      },
      body: JSON.stringify(payload),
    });

  // ---------------------------------------------------------------- overview

  function currentApp() {
    const apps = state.overview?.apps ?? [];
    return apps.find((app) => app.id === state.app) ?? null;
  }

  function updateAppPicker(apps) {
    const select = $('app-select');
    const ids = apps.map((app) => app.id);
    if (!ids.includes(state.app)) state.app = ids[0] ?? null;
    const current = [...select.options].map((option) => option.value);
    if (current.join('\n') !== ids.join('\n')) {
      select.replaceChildren(
        ...apps.map((app) => {
          const option = el('option', null, app.key ? `${app.id} (${app.key})` : app.id);
          option.value = app.id;
          return option;
        }),
      );
    }
    select.value = state.app ?? '';
    $('app-picker').hidden = apps.length < 2;
  }

  function renderServer(doc) {
    $('server-node').textContent = doc.node ? `node ${doc.node}` : '';
    $('server-version').textContent = doc.version ? `v${doc.version}` : '';
    $('server-uptime').textContent = isNumber(doc.uptime) ? `up ${formatDuration(doc.uptime)}` : '';
  }

  function renderStats(doc) {
    const app = currentApp();
    const rates = app?.rates ?? {};
    $('overview-app').textContent = app ? `app ${app.id}` : '';
    $('stat-connections').textContent = formatCount(app?.connections);
    $('stat-local-connections').textContent =
      doc.cluster && app ? `${formatCount(app.local_connections)} on this node` : '';
    $('stat-channels').textContent = formatCount(app?.channels);
    $('stat-subscriptions').textContent = formatCount(app?.subscriptions);
    $('stat-presence-users').textContent = formatCount(app?.presence_users);
    const pair = (format, a, b) => `${format(a)} / ${format(b)}`;
    $('stat-messages').textContent = pair(formatRate, rates.messages_in, rates.messages_out);
    $('stat-bytes').textContent = pair(formatBytes, rates.bytes_in, rates.bytes_out);
    $('stat-api-rate').textContent = formatRate(rates.api_requests);
    const api = doc.api ?? {};
    $('stat-api-latency').textContent = isNumber(api.p50_ms)
      ? `all apps: p50 ${formatMs(api.p50_ms)} · p99 ${formatMs(api.p99_ms)}`
      : 'no request in the last second';
    const history = app?.history;
    $('stat-history').textContent = history ? formatCount(history.events) : 'off';
    $('stat-history-streams').textContent = history
      ? `in ${formatCount(history.streams)} channel${history.streams === 1 ? '' : 's'}`
      : '';
    renderFeatures(app);
  }

  /** The app's hosted-Pusher settings: subscription counting, authorized connections. */
  function renderFeatures(app) {
    const settings = app?.settings ?? {};
    const on = [];
    if (settings.subscription_count) on.push('subscription counts');
    if (settings.authorized_connections) {
      on.push(`authorized connections (${formatDuration(settings.authorization_timeout)})`);
    }
    $('stat-features').textContent = app ? (on.length ? on.join(' · ') : 'off') : '-';
    const quota = isNumber(settings.max_connections)
      ? ` of ${formatCount(settings.max_connections)} allowed`
      : '';
    $('stat-features-note').textContent = isNumber(app?.authorized)
      ? `${formatCount(app.authorized)} authorized connection${app.authorized === 1 ? '' : 's'}${quota}`
      : '';
  }

  function renderErrors() {
    const errors = currentApp()?.errors ?? {};
    const rows = Object.entries(errors)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([code, count]) => [
        code,
        ERROR_NAMES[code] ?? '',
        { text: formatCount(count), className: 'num' },
      ]);
    fillTable($('errors-table').tBodies[0], rows, $('errors-empty'));
  }

  function renderApiStatus(doc) {
    const byStatus = doc.api?.by_status ?? {};
    const rows = Object.entries(byStatus)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([status, count]) => [status, { text: formatCount(count), className: 'num' }]);
    fillTable($('api-status-table').tBodies[0], rows, $('api-status-empty'));
  }

  function renderWebhooks(doc) {
    const list = $('webhooks');
    const webhooks = doc.webhooks;
    list.replaceChildren();
    list.hidden = !webhooks;
    $('webhooks-empty').hidden = Boolean(webhooks);
    if (!webhooks) return;
    for (const name of ['queued', 'sent', 'failed', 'dropped']) {
      list.append(el('dt', null, name), el('dd', null, formatCount(webhooks[name])));
    }
  }

  /** A node's connections, with how many use pusher-js's HTTP fallback when any do. */
  function connectionsText(node) {
    const t = node.transports ?? {};
    const fallback = (t.xhr_streaming ?? 0) + (t.xhr_polling ?? 0);
    if (!fallback) return formatCount(node.connections);
    return `${formatCount(node.connections)} (HTTP fallback: ${formatCount(t.xhr_streaming ?? 0)} streaming, ${formatCount(t.xhr_polling ?? 0)} polling)`;
  }

  function renderNodes(doc) {
    const rows = (doc.nodes ?? []).map((node) => [
      node.self ? `${node.id} (this node)` : node.id,
      { text: node.state, className: `state state-${node.state === 'up' ? 'up' : 'stale'}` },
      { text: connectionsText(node), className: 'num' },
      { text: isNumber(node.cpu) ? `${node.cpu.toFixed(1)} %` : '-', className: 'num' },
      { text: formatBytes(node.rss), className: 'num' },
      { text: formatRate(node.messages_out), className: 'num' },
    ]);
    fillTable($('nodes-table').tBodies[0], rows);
  }

  function applyOverview(doc) {
    state.overview = doc;
    const previousApp = state.app;
    updateAppPicker(doc.apps ?? []);
    renderServer(doc);
    renderStats(doc);
    renderErrors();
    renderApiStatus(doc);
    renderWebhooks(doc);
    renderNodes(doc);
    renderGraphs();
    if (state.app !== previousApp) onAppChanged();
  }

  // ---------------------------------------------------------------- time series and graphs

  /** The series of GET api/overview, trimmed to SERIES_LENGTH samples. */
  function loadSeries(series) {
    const t = Array.isArray(series?.t) ? series.t.slice(-SERIES_LENGTH) : [];
    const apps = {};
    for (const [id, values] of Object.entries(series?.apps ?? {})) {
      apps[id] = {};
      for (const [name, list] of Object.entries(values ?? {})) {
        apps[id][name] = Array.isArray(list) ? list.slice(-t.length || undefined) : [];
      }
    }
    state.series = { t, apps };
  }

  /** Append the newest sample of an `overview` feed event, keeping every list aligned with t. */
  function appendSample(sample) {
    const { t, apps } = state.series;
    if (!isNumber(sample?.t) || (t.length && sample.t <= t[t.length - 1])) return;
    const length = t.length;
    t.push(sample.t);
    for (const id of new Set([...Object.keys(apps), ...Object.keys(sample.apps ?? {})])) {
      const series = (apps[id] ??= {});
      const values = sample.apps?.[id] ?? {};
      for (const name of new Set([...Object.keys(series), ...Object.keys(values)])) {
        const list = (series[name] ??= []);
        while (list.length < length) list.unshift(null);
        list.push(isNumber(values[name]) ? values[name] : null);
      }
    }
    if (t.length > SERIES_LENGTH) {
      const extra = t.length - SERIES_LENGTH;
      t.splice(0, extra);
      for (const series of Object.values(apps)) {
        for (const list of Object.values(series)) list.splice(0, list.length - t.length);
      }
    }
  }

  /** A round axis maximum (1, 2 or 5 times a power of ten) at or above `value`. */
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) {
      if (value <= step * power) return step * power;
    }
    return 10 * power;
  }

  function buildGraph(figure) {
    const names = figure.dataset.series.split(' ');
    const plot = svg('svg', {
      viewBox: `0 0 ${GRAPH_WIDTH} ${GRAPH_HEIGHT}`,
      preserveAspectRatio: 'none',
      role: 'img',
      class: 'plot',
    });
    for (const y of [0, GRAPH_HEIGHT / 2, GRAPH_HEIGHT]) {
      plot.append(svg('line', { x1: 0, x2: GRAPH_WIDTH, y1: y, y2: y, class: 'gridline' }));
    }
    const lines = names.map((name, index) => {
      const line = svg('polyline', { class: `series series-${index}`, points: '' });
      line.dataset.name = name;
      plot.append(line);
      return line;
    });
    const axis = el('div', 'axis');
    const max = el('span', 'axis-max', '1');
    axis.append(max, el('span', 'axis-zero', '0'));
    const frame = el('div', 'plot-frame');
    frame.append(axis, plot);
    const times = el('div', 'axis-time');
    times.append(el('span', null, '5 min ago'), el('span', null, 'now'));
    const now = el('span', 'graph-now');
    figure.querySelector('figcaption').append(' ', now);
    figure.append(frame, times);
    figure.graph = { plot, lines, max, now, names };
  }

  function renderGraph(figure) {
    if (!figure.graph) buildGraph(figure);
    const { plot, lines, max, now, names } = figure.graph;
    const { t } = state.series;
    const values = state.series.apps[state.app] ?? {};
    const lists = names.map((name) => values[name] ?? []);
    const top = niceMax(Math.max(0, ...lists.flat().filter(isNumber)));
    const end = t.length ? t[t.length - 1] : 0;
    const start = end - SERIES_LENGTH;
    lists.forEach((list, index) => {
      const points = [];
      list.forEach((value, i) => {
        if (!isNumber(value) || !isNumber(t[i])) return;
        const x = ((t[i] - start) / SERIES_LENGTH) * GRAPH_WIDTH;
        const y = GRAPH_HEIGHT - (value / top) * GRAPH_HEIGHT;
        points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      });
      lines[index].setAttribute('points', points.join(' '));
    });
    const format = GRAPH_FORMATS[figure.id] ?? formatRate;
    max.textContent = figure.id === 'graph-bytes' ? formatBytes(top) : formatCount(top);
    now.textContent = lists.map((list) => format(list[list.length - 1])).join(' / ');
    const title = figure.querySelector('figcaption').firstChild.textContent.trim();
    plot.setAttribute('aria-label', `${title}: ${now.textContent} (axis up to ${max.textContent})`);
  }

  function renderGraphs() {
    for (const figure of document.querySelectorAll('.graph')) renderGraph(figure);
  }

  // ---------------------------------------------------------------- channels

  function renderChannelList(doc) {
    const items = Array.isArray(doc.channels) ? doc.channels : [];
    const list = $('channel-list');
    const fragment = document.createDocumentFragment();
    for (const channel of items) {
      const button = el('button', 'channel-button');
      button.type = 'button';
      button.dataset.channel = channel.name;
      button.append(el('span', 'channel-name', channel.name));
      const counts = [`${formatCount(channel.subscriptions)} sub.`];
      if (isNumber(channel.users)) counts.push(`${formatCount(channel.users)} users`);
      button.append(el('span', 'channel-counts', counts.join(' · ')));
      if (channel.name === state.channel) button.setAttribute('aria-current', 'true');
      const li = el('li');
      li.append(button);
      fragment.append(li);
    }
    list.replaceChildren(fragment);
    const total = isNumber(doc.total) ? doc.total : items.length;
    const shown = doc.truncated ? `, the first ${items.length} shown: refine the filter` : '';
    const plural = total === 1 ? '' : 's';
    $('channel-count').textContent = `${formatCount(total)} channel${plural}${shown}`;
  }

  const loadChannels = oneAtATime(async () => {
    if (!state.app) return;
    const filter = $('channel-filter').value.trim();
    const params = new URLSearchParams({ app: state.app, filter });
    try {
      renderChannelList(await getJson(`api/channels?${params}`));
    } catch (error) {
      $('channel-count').textContent = `Could not list channels: ${error.message}`;
    }
  });

  function historyFact(history) {
    if (!history) return 'off for this app';
    if (!history.followed) return 'nothing kept';
    return `epoch ${asText(history.epoch)}, offset ${asText(history.offset)}`;
  }

  function renderFacts(doc) {
    const facts = [
      ['Occupied', doc.occupied ? 'yes' : 'no'],
      ['Subscriptions (cluster)', formatCount(doc.subscriptions)],
      ['Subscribers on this node', formatCount(doc.local_subscribers?.length ?? 0)],
    ];
    if (Array.isArray(doc.members)) {
      facts.push(['Presence members', formatCount(doc.members.length)]);
    }
    facts.push(['History', historyFact(doc.history)]);
    $('channel-facts').replaceChildren(
      ...facts.flatMap(([name, value]) => [el('dt', null, name), el('dd', null, value)]),
    );
  }

  function renderMembers(doc) {
    const presence = Array.isArray(doc.members);
    $('members-block').hidden = !presence;
    if (!presence) return;
    const rows = doc.members.map((member) => [asText(member.id), asText(member.info)]);
    fillTable($('members-table').tBodies[0], rows, $('members-empty'));
  }

  function renderSubscribers(doc) {
    const sockets = Array.isArray(doc.local_subscribers) ? doc.local_subscribers : [];
    fillTable(
      $('subscribers-table').tBodies[0],
      sockets.map((socketId) => [asText(socketId)]),
      $('subscribers-empty'),
    );
  }

  function renderCache(doc) {
    const cache = doc.cache;
    const isCache = CACHE_CHANNEL.test(String(doc.name ?? ''));
    $('cache-block').hidden = !isCache && (cache === null || cache === undefined);
    $('channel-cache').textContent =
      cache === null || cache === undefined ? 'Nothing cached.' : prettyEvent(cache);
  }

  function renderHistory(doc) {
    const events = doc.history?.events ?? [];
    const rows = [...events].reverse().map((event) => [
      { text: asText(event.offset), className: 'num' },
      asText(event.event),
      { text: asText(event.data), className: 'data' },
    ]);
    fillTable($('history-table').tBodies[0], rows, $('history-empty'));
  }

  function renderChannel(doc) {
    $('channel-name').textContent = doc.name ?? state.channel;
    renderFacts(doc);
    renderMembers(doc);
    renderSubscribers(doc);
    renderCache(doc);
    renderHistory(doc);
  }

  const loadChannel = oneAtATime(async () => {
    if (!state.channel || !state.app) return;
    const name = state.channel;
    const params = new URLSearchParams({ app: state.app, name });
    try {
      const doc = await getJson(`api/channel?${params}`);
      if (name === state.channel) renderChannel(doc);
    } catch (error) {
      if (name === state.channel) {
        $('channel-facts').replaceChildren(el('dt', null, 'Error'), el('dd', null, error.message));
      }
    }
  });

  function openChannel(name) {
    state.channel = name;
    $('channel-placeholder').hidden = true;
    $('channel-view').hidden = false;
    $('channel-name').textContent = name;
    for (const button of document.querySelectorAll('.channel-button')) {
      if (button.dataset.channel === name) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    }
    loadChannel();
  }

  function closeChannel() {
    state.channel = null;
    $('channel-view').hidden = true;
    $('channel-placeholder').hidden = false;
    for (const button of document.querySelectorAll('.channel-button[aria-current]')) {
      button.removeAttribute('aria-current');
    }
  }

  function onAppChanged() {
    closeChannel();
    $('channel-list').replaceChildren();
    loadChannels();
  }

  // ---------------------------------------------------------------- debug console

  function consoleFilter() {
    return {
      channel: $('console-channel').value.trim().toLowerCase(),
      event: $('console-event').value.trim().toLowerCase(),
      kind: $('console-kind').value,
    };
  }

  function matches(entry, filter) {
    if (filter.kind && entry.kind !== filter.kind) return false;
    if (filter.channel && !String(entry.channel ?? '').toLowerCase().includes(filter.channel)) {
      return false;
    }
    if (filter.event && !String(entry.event ?? '').toLowerCase().includes(filter.event)) {
      return false;
    }
    return true;
  }

  function consoleRow(entry) {
    const row = el('tr', `kind-${String(entry.kind).replace(/[^a-z_]/g, '')}`);
    row.dataset.kind = entry.kind ?? '';
    const where = [entry.app ? `app ${entry.app}` : '', entry.node ? `node ${entry.node}` : ''];
    row.title = where.filter(Boolean).join(', ');
    const cells = [
      [formatTime(entry.t), 'time'],
      [entry.kind, 'kind'],
      [entry.channel, 'channel'],
      [entry.event, 'event'],
      [entry.socket_id, 'socket'],
      [entry.user_id, 'user'],
      [entry.code, 'code'],
      [entry.message, 'message'],
      [entry.data, 'data'],
    ];
    for (const [value, className] of cells) row.append(el('td', className, asText(value)));
    return row;
  }

  /** Rows for `entries` (oldest first) as a fragment, newest first. */
  function consoleRows(entries, filter) {
    const fragment = document.createDocumentFragment();
    let count = 0;
    for (let i = entries.length - 1; i >= 0 && count < CONSOLE_ROWS; i -= 1) {
      if (!matches(entries[i], filter)) continue;
      fragment.append(consoleRow(entries[i]));
      count += 1;
    }
    return fragment;
  }

  function updateConsoleStatus() {
    const tbody = $('console-table').tBodies[0];
    const shown = tbody.rows.length;
    const total = consoleState.entries.length;
    $('console-count').textContent =
      shown === total ? `${total} entries` : `${shown} of ${total} entries shown`;
    const buffered = consoleState.buffer.length + consoleState.overflow;
    $('console-buffered').textContent = consoleState.paused ? `· paused, ${buffered} new` : '';
    const dropped = consoleState.dropped - consoleState.droppedAtClear;
    $('console-dropped').textContent =
      dropped > 0 ? `· ${formatCount(dropped)} dropped by the server (rate limit)` : '';
    $('console-empty').hidden = total > 0;
    $('console-pause').textContent = consoleState.paused ? `Resume (${buffered})` : 'Pause';
  }

  function addConsoleEntries(entries) {
    if (!entries.length) return;
    consoleState.entries.push(...entries);
    const excess = consoleState.entries.length - CONSOLE_ROWS;
    if (excess > 0) consoleState.entries.splice(0, excess);
    const tbody = $('console-table').tBodies[0];
    tbody.insertBefore(consoleRows(entries, consoleFilter()), tbody.firstChild);
    while (tbody.rows.length > CONSOLE_ROWS) tbody.lastElementChild.remove();
  }

  function redrawConsole() {
    const rows = consoleRows(consoleState.entries, consoleFilter());
    $('console-table').tBodies[0].replaceChildren(rows);
    updateConsoleStatus();
  }

  /** Whether an entry was not seen yet (a reopened feed sends recent entries again). */
  function isNew(entry) {
    if (!isNumber(entry.seq)) return true;
    const last = consoleState.lastSeq.get(entry.node);
    if (last !== undefined && entry.seq <= last) return false;
    consoleState.lastSeq.set(entry.node, entry.seq);
    return true;
  }

  function onConsoleBatch(doc) {
    const entries = (Array.isArray(doc.entries) ? doc.entries : []).filter(isNew);
    if (isNumber(doc.dropped)) consoleState.dropped = doc.dropped;
    if (consoleState.paused) {
      const room = Math.max(0, PAUSE_BUFFER - consoleState.buffer.length);
      consoleState.buffer.push(...entries.slice(0, room));
      consoleState.overflow += Math.max(0, entries.length - room);
    } else {
      addConsoleEntries(entries);
    }
    updateConsoleStatus();
  }

  function togglePause() {
    consoleState.paused = !consoleState.paused;
    $('console-pause').setAttribute('aria-pressed', String(consoleState.paused));
    if (!consoleState.paused) {
      const buffered = consoleState.buffer;
      consoleState.buffer = [];
      consoleState.overflow = 0;
      addConsoleEntries(buffered.slice(-CONSOLE_ROWS));
    }
    updateConsoleStatus();
  }

  function clearConsole() {
    consoleState.entries = [];
    consoleState.buffer = [];
    consoleState.overflow = 0;
    consoleState.droppedAtClear = consoleState.dropped;
    redrawConsole();
  }

  // ---------------------------------------------------------------- live feed

  function setFeedState(text, className) {
    const badge = $('feed-state');
    badge.textContent = text;
    badge.className = `badge ${className}`;
  }

  function parseEvent(event) {
    try {
      return JSON.parse(event.data);
    } catch {
      return null;
    }
  }

  function openFeed() {
    const source = new EventSource('api/feed');
    let failed = false;
    source.addEventListener('open', () => {
      setFeedState('live', 'live');
      if (failed) loadOverview(); // refill the graphs over the gap
      failed = false;
    });
    source.addEventListener('error', () => {
      failed = true;
      const closed = source.readyState === EventSource.CLOSED;
      setFeedState(closed ? 'disconnected' : 'reconnecting', 'down');
      if (closed) {
        // The browser gave up (the answer was not a feed): say why, then start a new feed.
        loadOverview();
        setTimeout(openFeed, 5000);
      }
    });
    source.addEventListener('overview', (event) => {
      const doc = parseEvent(event);
      if (!doc) return;
      state.lastFeedMessage = Date.now();
      appendSample(doc.sample);
      applyOverview(doc);
    });
    source.addEventListener('console', (event) => {
      const doc = parseEvent(event);
      if (doc) onConsoleBatch(doc);
    });
  }

  function watchFeed() {
    const badge = $('feed-state');
    const silent = Date.now() - state.lastFeedMessage > FEED_STALE_MS;
    if (silent && badge.textContent === 'live') setFeedState('waiting', 'down');
    if (!silent && badge.textContent === 'waiting') setFeedState('live', 'live');
  }

  async function loadOverview() {
    try {
      const doc = await getJson('api/overview');
      loadSeries(doc.series);
      applyOverview(doc);
      showNotice('');
    } catch (error) {
      showNotice(`Could not load the overview: ${error.message}`);
    }
  }

  // ---------------------------------------------------------------- actions

  function showResult(id, text, ok) {
    const result = $(id);
    result.textContent = text;
    result.className = `result ${ok ? 'ok' : 'error'}`;
  }

  async function onTrigger(event) {
    event.preventDefault();
    const channel = $('trigger-channel').value.trim();
    const name = $('trigger-event').value.trim();
    const text = $('trigger-data').value.trim() || 'null';
    if (!channel || !name) {
      showResult('trigger-result', 'A channel and an event name are needed.', false);
      return;
    }
    let data;
    try {
      data = JSON.parse(text);
    } catch (error) {
      showResult('trigger-result', `The data is not valid JSON: ${error.message}`, false);
      return;
    }
    if (!window.confirm(`Send event "${name}" to channel "${channel}" of app ${state.app}?`)) {
      showResult('trigger-result', 'Not sent.', false);
      return;
    }
    try {
      await postJson('api/trigger', { app: state.app, channel, event: name, data });
      showResult('trigger-result', `Sent "${name}" to ${channel}.`, true);
    } catch (error) {
      showResult('trigger-result', `Not sent: ${error.message}`, false);
    }
  }

  async function onTerminate(event) {
    event.preventDefault();
    const userId = $('terminate-user').value.trim();
    if (!userId) {
      showResult('terminate-result', 'A user id is needed.', false);
      return;
    }
    if (!window.confirm(`Close every connection of user "${userId}" in app ${state.app}?`)) {
      showResult('terminate-result', 'Nothing done.', false);
      return;
    }
    try {
      await postJson('api/terminate', { app: state.app, user_id: userId });
      showResult('terminate-result', `Closed the connections of user ${userId}.`, true);
    } catch (error) {
      showResult('terminate-result', `Failed: ${error.message}`, false);
    }
  }

  // ---------------------------------------------------------------- wiring

  function debounce(fn, delay) {
    let timer = null;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, delay);
    };
  }

  function bindControls() {
    $('app-select').addEventListener('change', (event) => {
      state.app = event.target.value;
      renderStats(state.overview ?? {});
      renderErrors();
      renderGraphs();
      onAppChanged();
    });
    $('channel-filter').addEventListener('input', debounce(loadChannels, 250));
    $('channel-list').addEventListener('click', (event) => {
      const button = event.target.closest('.channel-button');
      if (button) openChannel(button.dataset.channel);
    });
    $('channel-close').addEventListener('click', closeChannel);
    const redraw = debounce(redrawConsole, 150);
    for (const id of ['console-channel', 'console-event']) $(id).addEventListener('input', redraw);
    $('console-kind').addEventListener('change', redrawConsole);
    $('console-controls').addEventListener('submit', (event) => event.preventDefault());
    $('console-pause').addEventListener('click', togglePause);
    $('console-clear').addEventListener('click', clearConsole);
    $('trigger-form').addEventListener('submit', onTrigger);
    $('terminate-form').addEventListener('submit', onTerminate);
  }

  async function start() {
    bindControls();
    updateConsoleStatus();
    renderGraphs();
    await loadOverview();
    openFeed();
    setInterval(() => {
      loadChannels();
      loadChannel();
    }, CHANNELS_REFRESH_MS);
    setInterval(watchFeed, 1000);
  }

  start();
})();
