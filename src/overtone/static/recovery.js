/*!
 * overtone recovery: lossless reconnect for pusher-js (7.x, 8.x) and laravel-echo.
 *
 * Contract (overtone protocol, "Lossless reconnect: history and recovery"):
 * - On channels with history every event frame carries a top-level `offset` and
 *   `pusher_internal:subscription_succeeded` carries `position: {epoch, offset}`. pusher-js
 *   drops those fields when it decodes a frame, so this add-on reads the raw frames.
 * - It remembers, per channel, the last position seen. Whenever pusher-js sends
 *   `pusher:subscribe` for a channel with a known position (every resubscribe after a
 *   reconnect, or the first subscribe after `positions` / `startFrom`), the subscribe carries
 *   `recover: {epoch, offset}`.
 * - `recovered: true`: the server sends the missed events in order, then live ones; the app
 *   receives them through its usual callbacks, none missing, none twice. The subscribe also
 *   names the previous connection (`recover.socket_id`): an event the app triggered for the
 *   others of that connection (`toOthers()`) comes back as `pusher_internal:skipped` with its
 *   offset, which pusher-js ignores and which moves the position past it.
 * - `recovered: false` (or no `recovered` at all: a server without history): what was missed
 *   is gone. `onResync(channelName, position)` is called once and the channel emits
 *   `overtone:resync` with `{channel, position}` (laravel-echo:
 *   `.listen('.overtone:resync', cb)`); the app must reload that channel's state.
 * - `pusher.unsubscribe(name)` forgets the channel's position. Channels without history are
 *   left alone, and so is everything when the server is not overtone.
 *
 * Usage: `var handle = OvertoneRecovery.install(pusher, {onResync: fn, positions: {...}})`
 * right after creating the client and before subscribing (Echo: `echo.connector.pusher`).
 * `handle.position(name)` is the last position seen ({epoch, offset} or null),
 * `handle.startFrom(name, position)` sets where the next subscribe recovers from,
 * `handle.uninstall()` removes the add-on. Served by overtone at /overtone/recovery.js.
 * No dependencies, no build step: <script> (global OvertoneRecovery), require(), bundlers.
 */
(function (root, factory) {
  var api = factory();
  if (typeof module === 'object' && module.exports) {
    module.exports = api;
    module.exports.install = api.install;
  } else if (typeof define === 'function' && define.amd) {
    define([], function () {
      return api;
    });
  } else {
    (typeof globalThis !== 'undefined' ? globalThis : root || self).OvertoneRecovery = api;
  }
})(this, function () {
  'use strict';

  var RESYNC = 'overtone:resync';
  var SUBSCRIBED = 'pusher_internal:subscription_succeeded';

  function has(object, key) {
    return Object.prototype.hasOwnProperty.call(object, key);
  }

  function isPosition(value) {
    return (
      value !== null &&
      typeof value === 'object' &&
      (typeof value.epoch === 'string' || typeof value.epoch === 'number') &&
      typeof value.offset === 'number' &&
      value.offset >= 0 &&
      Math.floor(value.offset) === value.offset
    );
  }

  function copy(position) {
    return { epoch: String(position.epoch), offset: position.offset };
  }

  /** Report an exception of an app callback without breaking pusher-js's frame handling. */
  function rethrowLater(error) {
    setTimeout(function () {
      throw error;
    }, 0);
  }

  function install(pusher, options) {
    var manager = pusher && pusher.connection;
    if (!manager || typeof manager.send_event !== 'function' || typeof manager.bind !== 'function') {
      throw new TypeError('OvertoneRecovery.install(pusher): expected a pusher-js Pusher instance');
    }
    if (pusher.__overtoneRecovery) {
      throw new Error('OvertoneRecovery is already installed on this Pusher instance');
    }
    options = options || {};
    var positions = {}; // channel name -> {epoch, offset}: the last position seen
    var sockets = {}; // channel name -> socket id of the connection that position was seen on
    var recovering = {}; // channel name -> true: a subscribe with `recover` awaits its answer
    var resyncs = []; // channels whose recovery failed, reported once pusher-js has the frame
    var transport = null; // the pusher-js transport connection whose frames are read
    var active = true;

    function startFrom(name, position) {
      delete sockets[name];
      if (position === null || position === undefined) {
        delete positions[name];
      } else if (isPosition(position)) {
        positions[name] = copy(position);
      } else {
        var got = JSON.stringify(position);
        throw new TypeError('OvertoneRecovery: a position is {epoch, offset}, not ' + got);
      }
    }

    function position(name) {
      return has(positions, name) ? copy(positions[name]) : null;
    }

    /** The pusher-js channel object of `name` (also the user's #server-to-user channel). */
    function channelObject(name) {
      var channel = typeof pusher.channel === 'function' ? pusher.channel(name) : null;
      var user = pusher.user && pusher.user.serverToUserChannel;
      return channel || (user && user.name === name ? user : null);
    }

    // Raw frames, before pusher-js decodes them (global callbacks of the transport run first).
    function onRawFrame(eventName, message) {
      if (eventName !== 'message' || !message || typeof message.data !== 'string') return;
      var text = message.data;
      if (text.indexOf('"offset"') === -1 && text.indexOf(SUBSCRIBED) === -1) return;
      var frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        return; // pusher-js reports it
      }
      if (!frame || typeof frame.channel !== 'string' || typeof frame.event !== 'string') return;
      var name = frame.channel;
      if (frame.event === SUBSCRIBED) {
        var asked = has(recovering, name);
        delete recovering[name];
        var channel = channelObject(name);
        if (!channel || channel.subscriptionCancelled) return; // being unsubscribed
        var at = isPosition(frame.position) ? copy(frame.position) : null;
        if (asked && frame.recovered === true) {
          // The missed events follow: keep the position they continue from.
          if (at && has(positions, name)) positions[name].epoch = at.epoch;
          return;
        }
        if (at) {
          positions[name] = at;
          sockets[name] = manager.socket_id;
        } else {
          delete positions[name]; // no history on this channel (any more)
        }
        // Not recovered (or a server that ignores `recover`): the app must reload. The
        // server also says so unasked when it may have missed events for this channel
        // (after a cluster outage): `recovered: false` on a subscription already running.
        if (asked || frame.recovered === false) resyncs.push(name);
      } else if (typeof frame.offset === 'number' && has(positions, name)) {
        if (frame.offset > positions[name].offset) {
          positions[name].offset = frame.offset;
          sockets[name] = manager.socket_id;
        }
      }
    }

    // After pusher-js has handled the frame (the channel is subscribed again): report resyncs.
    function afterFrame() {
      while (resyncs.length) {
        var name = resyncs.shift();
        var at = position(name);
        if (typeof options.onResync === 'function') {
          try {
            options.onResync(name, at);
          } catch (error) {
            rethrowLater(error);
          }
        }
        var channel = channelObject(name);
        if (channel) {
          try {
            channel.emit(RESYNC, { channel: name, position: at });
          } catch (error) {
            rethrowLater(error);
          }
        }
      }
    }

    function detach() {
      if (transport) {
        transport.unbind_global(onRawFrame);
        transport.unbind('message', afterFrame);
        transport = null;
      }
      recovering = {};
      resyncs = [];
    }

    // Each new connection has a new transport; attach before pusher-js resubscribes.
    function attach() {
      var connection = manager.connection;
      var next = connection && connection.transport;
      if (next === transport) return;
      detach();
      if (!next || typeof next.bind_global !== 'function') {
        if (typeof console !== 'undefined') {
          console.warn('OvertoneRecovery: cannot read frames of this pusher-js version');
        }
        return;
      }
      transport = next;
      transport.bind_global(onRawFrame);
      transport.bind('message', afterFrame);
    }

    function onStateChange(change) {
      if (change && change.current === 'connected') attach();
    }

    var sendEvent = manager.send_event;
    var ownSendEvent = has(manager, 'send_event');
    function recoveringSendEvent(name, data, channel) {
      if (active && name === 'pusher:subscribe' && data && has(positions, data.channel)) {
        var withRecover = {};
        for (var key in data) if (has(data, key)) withRecover[key] = data[key];
        withRecover.recover = copy(positions[data.channel]);
        // The previous connection: events its own app sent "to others" are not replayed.
        var previous = sockets[data.channel];
        if (previous && previous !== manager.socket_id) withRecover.recover.socket_id = previous;
        recovering[data.channel] = true;
        data = withRecover;
      }
      return sendEvent.call(this, name, data, channel);
    }

    var unsubscribe = pusher.unsubscribe;
    var ownUnsubscribe = has(pusher, 'unsubscribe');
    function forgettingUnsubscribe(name) {
      if (active) {
        delete positions[name];
        delete sockets[name];
      }
      return unsubscribe.apply(this, arguments);
    }

    function restore(object, key, wrapper, original, own) {
      if (object[key] !== wrapper) return; // wrapped again since: the wrapper passes through
      if (own) object[key] = original;
      else delete object[key];
    }

    function uninstall() {
      if (!active) return;
      active = false;
      detach();
      manager.unbind('state_change', onStateChange);
      restore(manager, 'send_event', recoveringSendEvent, sendEvent, ownSendEvent);
      restore(pusher, 'unsubscribe', forgettingUnsubscribe, unsubscribe, ownUnsubscribe);
      delete pusher.__overtoneRecovery;
    }

    var initial = options.positions || {};
    for (var name in initial) if (has(initial, name)) startFrom(name, initial[name]);
    manager.send_event = recoveringSendEvent;
    pusher.unsubscribe = forgettingUnsubscribe;
    manager.bind('state_change', onStateChange);
    if (manager.state === 'connected') attach();

    var handle = { position: position, startFrom: startFrom, uninstall: uninstall };
    pusher.__overtoneRecovery = handle;
    return handle;
  }

  return { install: install, version: '1' };
});
