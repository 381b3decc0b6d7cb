"""Several nodes as one server: replicated cluster state and the brokers that carry it."""
