"""HTTP: the WorkOS-shaped read API at the root and the admin API under /api/v1."""
