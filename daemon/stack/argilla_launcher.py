"""Start argilla-server (or its worker) with osmem-compatible search-engine updates.

Runs inside the Argilla server's own virtualenv, never in the daemon's. osmem-server (the in-memory
OpenSearch used by the local stack) refuses scripted document updates, which Argilla 2.8 uses in three
methods of ``argilla_server.search_engine.commons``; unpatched, every response submit answers HTTP 500
while the database keeps the answer and the index goes stale. We replace those three methods with a
read-modify-write of the whole document. The compose stack uses real Elasticsearch and needs none of this.

Usage: python argilla_launcher.py start --host 127.0.0.1 --port 6900 | worker | database ... | search-engine ...
"""

import sys

from argilla_server.search_engine import commons
from argilla_server.search_engine.commons import BaseElasticAndOpenSearchEngine, es_index_name_for_dataset


async def _read_modify_write(engine, index_name: str, record_id: str, change) -> None:
    found = await engine.client.get(index=index_name, id=record_id)
    source = found["_source"]
    change(source)
    await engine.client.index(index=index_name, id=record_id, body=source, refresh=True)


def _response_document(response) -> dict:
    # like commons._map_record_response_to_es, but a discard may carry no values at all
    return {
        "id": str(response.id),
        "status": response.status,
        "user_id": str(response.user_id),
        **{
            commons.es_path_for_question_response(question): value.get("value")
            for question, value in (response.values or {}).items()
        },
    }


async def update_record_response(self, response) -> None:
    record = response.record
    document = _response_document(response)

    def change(source: dict) -> None:
        kept = [r for r in (source.get("responses") or []) if str(r.get("id")) != str(document["id"])]
        source["responses"] = [*kept, document]

    await _read_modify_write(self, es_index_name_for_dataset(record.dataset), str(record.id), change)


async def delete_record_response(self, response) -> None:
    record = response.record
    response_id = str(response.id)

    def change(source: dict) -> None:
        source["responses"] = [r for r in (source.get("responses") or []) if str(r.get("id")) != response_id]

    await _read_modify_write(self, es_index_name_for_dataset(record.dataset), str(record.id), change)


async def delete_record_suggestion(self, suggestion) -> None:
    question_name = suggestion.question.name

    def change(source: dict) -> None:
        (source.get("suggestions") or {}).pop(question_name, None)

    index_name = es_index_name_for_dataset(suggestion.record.dataset)
    await _read_modify_write(self, index_name, str(suggestion.record_id), change)


def patch() -> None:
    """Swap the three scripted updates for read-modify-write, and index value-less discards (idempotent)."""
    BaseElasticAndOpenSearchEngine.update_record_response = update_record_response
    BaseElasticAndOpenSearchEngine.delete_record_response = delete_record_response
    BaseElasticAndOpenSearchEngine.delete_record_suggestion = delete_record_suggestion
    BaseElasticAndOpenSearchEngine._map_record_response_to_es = staticmethod(_response_document)
    commons._al_daemon_patched = True


if __name__ == "__main__":
    patch()
    from argilla_server.cli import app

    sys.argv[0] = "argilla_server"
    app()
