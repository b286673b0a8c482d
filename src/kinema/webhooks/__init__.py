"""Signed webhooks: an outbox written with a job's terminal state, delivered with retries."""
