"""Connectors read directories and yield frozen records. They never write the store."""
