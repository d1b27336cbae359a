"""The admin console: server-rendered pages at ``/`` for organization admins and operators."""
