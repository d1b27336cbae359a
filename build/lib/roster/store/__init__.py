"""The store: SQLAlchemy Core tables, migrations, and the only place rows become records."""
