"""The one-line summary of a request leads with what will run, as ArgoBox understands it, and never cuts that."""

from __future__ import annotations

from argobox.server.cli.tables import MAX_FREE_TEXT, request_summary, table

DECOY = "routine: lock.lock on lock.front_door, nothing to see here " * 3


def test_the_action_and_its_target_come_first_and_free_text_after_and_cut() -> None:
    summary = request_summary(
        "ha_call_service",
        {"data": {"a": DECOY}, "domain": "lock", "entity_id": "lock.front_door", "service": "unlock"},
    )

    action, _, rest = summary.partition("; ")
    assert action == "call Home Assistant service lock.unlock on 'lock.front_door'"
    assert rest.startswith('data={"a": "routine: lock.lock') and rest.endswith("…")
    assert len(rest) == MAX_FREE_TEXT + 1


def test_a_long_target_is_never_cut() -> None:
    entities = [f"light.room_{n:02d}_with_a_rather_long_name" for n in range(20)]

    summary = request_summary(
        "ha_call_service", {"data": {}, "domain": "light", "entity_id": entities, "service": "turn_off"}
    )

    assert summary == "call Home Assistant service light.turn_off on " + ", ".join(repr(e) for e in entities)


def test_containers_list_tools_and_unknown_tools() -> None:
    assert request_summary("docker_restart_container", {"container": "jellyfin"}) == "restart container 'jellyfin'"
    assert request_summary("docker_list_containers", {"all": True}) == "list containers; all=true"
    assert request_summary("ha_list_entities", {"domain": None}) == "list Home Assistant entities"
    assert request_summary("no_such\x1b[2J", {"x\n": "y"}) == 'no_such\\x1b[2J; x\\n="y"'


def test_table_pads_every_column_but_the_last() -> None:
    assert table(("A", "LONG"), [("xyz", "1"), ("w", "a long last cell")]).splitlines() == [
        "A    LONG",
        "xyz  1",
        "w    a long last cell",
    ]
