"""The transcript store: chains of content-addressed nodes, snapshots, a cold cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.models import Message, Role
from activities.store import LocalDirectoryStore, MemoryStore, StoreMiss, TranscriptStore


def msg(i: int) -> Message:
    return Message(role=Role.USER if i % 2 else Role.ASSISTANT, content=f"message {i}")


@pytest.mark.parametrize("kind", ["memory", "directory"])
def test_a_chain_rebuilds_from_a_cold_cache(kind: str, tmp_path: Path) -> None:
    blobs = MemoryStore() if kind == "memory" else LocalDirectoryStore(tmp_path)
    writer = TranscriptStore(blobs, snapshot_every=4)
    ref = None
    for i in range(10):
        ref = writer.append(ref, [msg(i)])
    assert ref is not None
    reader = TranscriptStore(blobs)  # another worker process: nothing cached
    assert reader.load(ref) == [msg(i) for i in range(10)]


def test_nodes_are_deltas_between_snapshots() -> None:
    blobs = MemoryStore()
    store = TranscriptStore(blobs, snapshot_every=3)
    refs = []
    ref = None
    for i in range(6):
        ref = store.append(ref, [msg(i)])
        refs.append(ref)
    sizes = [len(blobs.get(r)) for r in refs]
    # Node 0 is a snapshot (1 message); nodes 1-2 are deltas; node 3 is a snapshot of 4.
    assert sizes[1] < sizes[3] and sizes[2] < sizes[3]


def test_the_same_content_is_stored_once(tmp_path: Path) -> None:
    blobs = LocalDirectoryStore(tmp_path)
    assert blobs.put(b"same") == blobs.put(b"same")
    assert len(list(tmp_path.rglob("*"))) == 2  # one folder, one blob


def test_an_unknown_reference_is_a_miss(tmp_path: Path) -> None:
    with pytest.raises(StoreMiss):
        TranscriptStore(LocalDirectoryStore(tmp_path)).load("0" * 64)
    with pytest.raises(StoreMiss):
        LocalDirectoryStore(tmp_path).get("../../etc/passwd")  # not a reference at all
