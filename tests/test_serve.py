"""`make run` (`python -m dalet_ops.cli serve`): chalice local with the pipeline running from the start."""
from __future__ import annotations

import duckdb

from chalicelib.ingest.events import encode_record, now, parse_event, stamp
from chalicelib.ingest.local_stream import LocalConsumer, LocalStream
from chalicelib.runtime import STREAM_FILE, WAREHOUSE_FILE
from tests.local_server import LocalServer, wait_until


def _leave_a_backlog(data_dir, count: int) -> list[str]:
    """Events acknowledged before a crash: in the stream, not yet in the warehouse."""
    data_dir.mkdir(parents=True)
    stream = LocalStream(data_dir / STREAM_FILE, "dalet-events")
    stored = [stamp(parse_event({"experiment": "backlog", "variant": "a", "event": "participate",
                                 "uuid": f"u{i}"}), now()) for i in range(count)]
    stream.append([(s.event_id, encode_record(s)) for s in stored])
    return [s.event_id for s in stored]


def test_a_backlog_left_by_a_crash_drains_at_start_without_any_request(tmp_path):
    data_dir = tmp_path / "data"
    event_ids = _leave_a_backlog(data_dir, 25)
    stream = LocalStream(data_dir / STREAM_FILE, "dalet-events")

    with LocalServer.start(data_dir, env={"DALET_API_KEY": "k"}, via_make_run=True) as server:
        # Readiness probes hit no route, so nothing but the server's own start can drain the stream.
        wait_until(lambda: stream.pending(LocalConsumer.CONSUMER) == 0, timeout=30,
                   message=f"backlog not drained:\n{server.log()}")
        assert "Report API key (x-api-key): k" in server.log()

    with duckdb.connect(str(data_dir / WAREHOUSE_FILE), read_only=True) as db:
        stored = {row[0] for row in db.execute("SELECT event_id FROM events").fetchall()}
    assert stored == set(event_ids)


def test_serve_answers_track_like_chalice_local(tmp_path):
    with LocalServer.start(tmp_path / "data", via_make_run=True) as server:
        reply = server.request("GET", "/track", query={"experiment": "e", "variant": "a",
                                                     "event": "participate", "uuid": "u1"})
        assert reply.status == 200 and reply.json() == {"ok": True, "accepted": 1}
