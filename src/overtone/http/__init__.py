"""The Pusher HTTP API: signed requests in, JSON out. Sans-I/O."""
