"""The running service's parts: settings, the store's engine, the secret box."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from roster.crypto import SecretBox, load_key
from roster.settings import Settings, get_settings
from roster.store.db import make_engine, migrate


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    _box: SecretBox | None = field(default=None, repr=False)

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(load_key(self.settings), reload=lambda: load_key(self.settings))
        return self._box


def open_runtime(settings: Settings | None = None, *, upgrade: bool = True) -> Runtime:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    if upgrade:
        migrate(engine)
    return Runtime(settings, engine)
