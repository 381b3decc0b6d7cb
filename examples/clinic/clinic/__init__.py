"""A small telemedicine app showing overtone.broadcast with FastAPI and laravel-echo."""
