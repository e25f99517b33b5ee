"""The eventsourcing application over a ledger's store.

Appends and queries do not go through it (see ledger.application); it is what
reconstitutes streams (``repository``), follows the log (``notification_log``,
``recorder``) and creates the library's tables at ``init``. Built on first use.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from ledger.canonical import canonical_json
from ledger.persistence import APPLICATION_NAME


class LedgerLibrary(Application[uuid.UUID]):
    name = APPLICATION_NAME  # names the library's tables (enforcementledger_events)

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return LeafMapper(transcoder=JSONTranscoder())


class LeafMapper(Mapper[uuid.UUID]):
    """Stores an aggregate event as the canonical JSON of its ledger record.

    The library's envelope fields are not duplicated in the payload: the id and
    version are table columns, the timestamp is the record's ``recorded_at`` and a
    Started event's originator topic follows from its own topic. Records only ever
    gain optional fields (additive schema changes), so old leaves stay readable
    and, being hashed, are never rewritten by an upcaster.
    """

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=canonical_json(domain_event.record),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        record = json.loads(stored_event.state)
        state: dict[str, Any] = {
            "originator_id": uuid.UUID(str(stored_event.originator_id)),
            "originator_version": stored_event.originator_version,
            "timestamp": datetime.fromisoformat(record["recorded_at"]),
            "record": record,
        }
        if issubclass(cls, Aggregate.Created):
            state["originator_topic"] = stored_event.topic.rsplit(".", 1)[0]
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event
