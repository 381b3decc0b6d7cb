"""Channel state: subscribers, presence rosters, the event cache and watchlists. Pure."""
