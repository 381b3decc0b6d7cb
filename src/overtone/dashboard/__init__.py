"""The live dashboard and debug console served under ``{path}/dashboard`` (docs/dashboard.md).

- :mod:`~overtone.dashboard.access`: Basic authentication, throttling of failed attempts,
  the guard on actions.
- :mod:`~overtone.dashboard.console`: the debug console's entries, made only while a feed is
  open and bounded in rate.
- :mod:`~overtone.dashboard.overview`: per-second samples, cluster-wide figures, the overview,
  channel list and channel documents.
- :mod:`~overtone.dashboard.routes`: the HTTP routes and the actions.
- :mod:`~overtone.dashboard.service`: the clock that samples and pushes the server-sent
  events feed (the only module here that uses asyncio).

The core never imports this package: a hub only calls the ``trace`` callable the service
gives it while someone watches.
"""
