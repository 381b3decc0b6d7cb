"""Pure, sans-I/O Pusher protocol core."""
