"""The settings an append's write transaction runs under, on the real server."""

from __future__ import annotations

import json

import pytest

from ledger.location import StoreLocation
from ledger.persistence import open_storage
from tests.conftest import Store


def test_postgres_write_transaction_plans_are_never_jit_compiled(store: Store) -> None:
    """Seq scans are disabled in write transactions (cost 10^10), which used to cross
    jit_above_cost: the checkpoint lookup of every signed `record` was JIT-compiled
    (~90 ms of a ~300 ms command)."""
    if store.kind != "postgres":
        pytest.skip("a PostgreSQL planner setting")
    storage = open_storage(StoreLocation.parse(store.url))
    try:
        with storage.write_transaction() as tx:
            settings = tx.db.one("SELECT current_setting('enable_seqscan'), current_setting('jit')")
            assert tuple(settings) == ("off", "off")
            plan = tx.db.one(
                "EXPLAIN (ANALYZE, FORMAT JSON) "
                "SELECT size, root FROM checkpoints ORDER BY size DESC, id DESC LIMIT 1"
            )[0]
            plan = plan if isinstance(plan, list) else json.loads(plan)
            assert "JIT" not in plan[0], plan[0]["JIT"]
    finally:
        storage.close()
