"""``overtone doctor``: configuration checks and a live end-to-end probe."""
