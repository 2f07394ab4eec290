"""Segment rows as the ingestion routes store them, built straight as StoredEvent rows.

Conventions (chalicelib/storage/schema.py): experiment, variant and uuid are null; `event` is the
track event's name; `timestamp` is the client time corrected for skew; properties/context are JSON text.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from chalicelib.ingest.events import StoredEvent

EXPOSURE = "Experiment Viewed"


def segment_row(kind: str, name: str | None, *, user_id: str | None = None, anonymous_id: str | None = None,
                at: datetime, received_at: datetime | None = None, namespace: str = "default",
                properties: dict[str, Any] | None = None, context: dict[str, Any] | None = None,
                browser: str | None = None, message_id: str | None = None) -> StoredEvent:
    message = message_id or hashlib.sha256(
        json.dumps([kind, name, user_id, anonymous_id, at.isoformat(), properties], sort_keys=True).encode()
    ).hexdigest()[:24]
    return StoredEvent(
        event_id=hashlib.blake2b(f"{namespace}:{message}".encode(), digest_size=16).hexdigest(),
        namespace=namespace, experiment=None, variant=None, event=name, uuid=None, value=None,
        received_at=received_at or at + timedelta(seconds=1), type=kind, user_id=user_id,
        anonymous_id=anonymous_id, message_id=message, timestamp=at,
        properties=None if properties is None else json.dumps(properties),
        context=None if context is None else json.dumps(context), browser=browser,
    )


def track(name: str, user: str, at: datetime, **extra: Any) -> StoredEvent:
    return segment_row("track", name, user_id=user, at=at, **extra)


def exposure(experiment_id: str, variation_id: str, user: str, at: datetime, *, anonymous: bool = False,
             properties: dict[str, Any] | None = None, **extra: Any) -> StoredEvent:
    props = {"experiment_id": experiment_id, "variation_id": variation_id, **(properties or {})}
    ids = {"anonymous_id": user} if anonymous else {"user_id": user}
    return segment_row("track", EXPOSURE, at=at, properties=props, **ids, **extra)
