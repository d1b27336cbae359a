"""The wire form of batches: a snapshot or a delta as JSON, exactly as it was built.

The on-prem agent reads a directory on another host and uploads what it read; the server
ingests it through the same path as a direct read. ``encode_batch`` and ``decode_batch``
round-trip every field (``decode_batch(encode_batch(b)) == b``, but for a snapshot's member
digests, which the server computes itself), and a malformed or inconsistent upload is refused
with the path of the offending field, never half-read.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from roster.domain.delta import Delta
from roster.domain.pairs import PairRuns
from roster.domain.records import Snapshot

WIRE_VERSION: Literal[1] = 1

Batch = Snapshot | Delta


class _SnapshotEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = WIRE_VERSION
    kind: Literal["snapshot"] = "snapshot"
    batch: Snapshot


class _DeltaEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = WIRE_VERSION
    kind: Literal["delta"] = "delta"
    batch: Delta


_ENVELOPE: TypeAdapter[_SnapshotEnvelope | _DeltaEnvelope] = TypeAdapter(
    Annotated[_SnapshotEnvelope | _DeltaEnvelope, Field(discriminator="kind")]
)


class WireError(ValueError):
    """An upload that is not a batch; the message names the first offending field."""


def encode_batch(batch: Batch) -> bytes:
    if isinstance(batch, Snapshot):  # the models know dicts and sets, not spools and runs
        plain = replace(batch, users=dict(batch.users), memberships=frozenset(batch.memberships))
        envelope: BaseModel = _SnapshotEnvelope(batch=plain)
    else:
        envelope = _DeltaEnvelope(batch=batch)
    return envelope.model_dump_json().encode()


def decode_batch(data: bytes | str) -> Batch:
    try:
        envelope = _ENVELOPE.validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise WireError(f"{where}: {first['msg']}") from None
    return _checked(envelope.batch)


def _checked(batch: Batch) -> Batch:
    """What the models cannot say: records keyed by their own ids, raw attributes that are JSON
    objects, memberships between objects of the snapshot. Member digests are the server's to
    compute, never taken from an upload."""
    for field, records in (("users", batch.users), ("groups", batch.groups)):
        for key, record in records.items():
            if key != record.external_id:
                raise WireError(
                    f"batch.{field}.{key}: keyed by {key!r} but its external_id is {record.external_id!r}"
                )
            _json_object(f"batch.{field}.{key}.raw_json", record.raw_json)
    for key, user in batch.users.items():
        _json_object(f"batch.users.{key}.custom_json", user.custom_json)
    if isinstance(batch, Delta):
        return batch
    known = batch.users.keys() | batch.groups.keys() | batch.unchanged.keys()
    for group, member in sorted(batch.memberships):
        if group not in batch.groups or member not in known:
            raise WireError(
                f"batch.memberships: ({group!r}, {member!r}) names an object the snapshot does not hold"
            )
    return replace(batch, member_digests={}, memberships=PairRuns.of(batch.memberships))


def _json_object(where: str, text: str) -> None:
    try:
        value = json.loads(text)
    except ValueError:
        raise WireError(f"{where}: is not JSON") from None
    if not isinstance(value, dict):
        raise WireError(f"{where}: must be a JSON object")
