"""E-mail notifications: an outbox table filled inside the services' units of work, drained
to an SMTP server (``RELUTH_SMTP_URL``) with every attempt recorded."""
