"""``roster rotate-key``: a new secret key for everything Roster keeps encrypted."""

from __future__ import annotations

import click
from cryptography.fernet import Fernet

from roster.cli_support import emit, handle_errors, json_option, runtime
from roster.crypto import SecretBox, load_key, write_key_file
from roster.store.rekey import reseal_all


@click.command("rotate-key")
@json_option
@handle_errors
def rotate_key(as_json: bool) -> None:
    """Seal every stored secret (bind passwords, client secrets, webhook secrets, the agents' CA
    key, sign-in state, mail holding links) with a new key, in one transaction.

    With a key file, the file holds the new and the old key while the store is resealed, then
    the new key alone; running processes pick it up at their next secret. With
    ROSTER_SECRET_KEY, the new key is printed once: set ROSTER_SECRET_KEY to "NEW,OLD" on every
    process, restart them, then to NEW alone."""
    rt = runtime()
    settings = rt.settings
    old = [k for k in load_key(settings).replace(b",", b" ").split() if k]
    new = Fernet.generate_key()
    in_file = not settings.secret_key
    if in_file:
        write_key_file(settings.key_file, [new, *old])  # both open everything until the end
    box = SecretBox(b",".join([new, *old]))
    try:
        with rt.engine.begin() as conn:
            counts = reseal_all(conn, box)
    except BaseException:
        if in_file:
            write_key_file(settings.key_file, old)  # nothing was resealed: the old key alone again
        raise
    data: dict[str, object] = {"resealed": counts, "total": sum(counts.values())}
    if in_file:
        write_key_file(settings.key_file, [new])
        data["key_file"] = str(settings.key_file)
        where = f"the key file {settings.key_file} holds the new key alone"
    else:
        data["new_key"] = new.decode()
        where = (
            f"set ROSTER_SECRET_KEY={new.decode()},{old[0].decode()} on every process, restart them, "
            f"then ROSTER_SECRET_KEY={new.decode()}"
        )
    emit(as_json, data, lambda: click.echo(f"resealed {data['total']} secrets; {where}"))
