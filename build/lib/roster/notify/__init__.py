"""E-mail: an outbox written in the same transaction as the change it reports, and an SMTP sender."""
