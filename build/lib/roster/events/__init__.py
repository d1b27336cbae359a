"""Events: the WorkOS-shaped payloads and the outbox they are written to."""
