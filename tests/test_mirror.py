"""Worker-local mirrors of workspaces (``activities.tools.mirror``), on real backends.

Each case runs against a workspace in memory (the protocol-only path: a listing of
``list_dir`` and ``info``) and against a real S3 server (SeaweedFS, see
``tests/objectstore.py``; one LIST, ETags, batch deletes). Both record what the mirror
asked of them, so "downloads nothing" and "uploads only that" are counted, not assumed;
on S3 every request is counted. The tests write to the store directly, as the agent's
file tools on another worker would.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from temporalio.exceptions import ApplicationError

from duragent.activities.objectstore import ObjectStoreConfig
from duragent.activities.tools.mirror import SyncReport, WorkspaceMirrors
from duragent.activities.tools.objectstore_workspace import S3Workspace
from duragent.activities.tools.workspace import MemoryWorkspace, Stamp, Workspace
from tests.objectstore import ObjectStoreServer

if TYPE_CHECKING:
    from obstore import ObjectMeta, PutResult

BACKENDS = ["memory", pytest.param("s3", marks=pytest.mark.object_store)]


# ==== backends that count what the mirror asks of them ====================================


@dataclass
class Calls:
    """What the mirror did to the store: files read, written, deleted; S3 requests."""

    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def clear(self) -> None:
        for found in (self.reads, self.writes, self.deletes, self.requests):
            found.clear()


class CountingMemory(MemoryWorkspace):
    def __init__(self) -> None:
        super().__init__()
        self.calls = Calls()

    async def read_bytes(self, path: str) -> bytes:
        self.calls.reads.append(path)
        return await super().read_bytes(path)

    async def write_bytes(self, path: str, data: bytes) -> int:
        self.calls.writes.append(path)
        return await super().write_bytes(path, data)

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        self.calls.deletes.append(path)
        await super().delete(path, recursive=recursive)


class CountingS3(S3Workspace):
    """Counts the mirror's calls and, below them, every request sent to the server."""

    def __init__(self, config: ObjectStoreConfig) -> None:
        super().__init__(config)
        self.calls = Calls()

    async def read_bytes(self, path: str) -> bytes:
        self.calls.reads.append(path)
        return await super().read_bytes(path)

    async def write_stamped(self, path: str, data: bytes) -> Stamp:
        self.calls.writes.append(path)
        return await super().write_stamped(path, data)

    async def delete_files(self, paths: Sequence[str], *, folders: Sequence[str] = ()) -> None:
        self.calls.deletes.extend(paths)
        await super().delete_files(paths, folders=folders)

    async def _get(self, key: str) -> bytes | None:
        self.calls.requests.append(f"GET {key}")
        return await super()._get(key)

    async def _head(self, key: str) -> ObjectMeta | None:
        self.calls.requests.append(f"HEAD {key}")
        return await super()._head(key)

    async def _put(self, key: str, data: bytes) -> PutResult:
        self.calls.requests.append(f"PUT {key}")
        return await super()._put(key, data)

    async def _delete(self, keys: Sequence[str]) -> None:
        self.calls.requests.append(f"DELETE {len(keys)}")
        await super()._delete(keys)

    async def _first_page(self, key: str) -> list[ObjectMeta]:
        self.calls.requests.append(f"LIST {key}")
        return await super()._first_page(key)

    async def _list_all(self, key: str) -> list[ObjectMeta]:
        self.calls.requests.append(f"LIST {key}")
        return await super()._list_all(key)


@dataclass
class Side:
    """The store side of a test: the workspace, what it recorded, the mirror's key."""

    workspace: CountingMemory | CountingS3
    key: str

    @property
    def calls(self) -> Calls:
        return self.workspace.calls


@pytest.fixture(scope="module")
def bucket(object_store: ObjectStoreServer) -> str:
    """One bucket for the module; each test gets a prefix of its own in it."""
    return object_store.create_bucket()


@pytest.fixture(params=BACKENDS)
def side(request: pytest.FixtureRequest) -> Side:
    if request.param == "memory":
        return Side(CountingMemory(), key=f"memory-{uuid.uuid4().hex}")
    server: ObjectStoreServer = request.getfixturevalue("object_store")
    bucket: str = request.getfixturevalue("bucket")
    # Under a prefix, as an agent's scoped workspace is.
    config = server.config(bucket, f"agents/{uuid.uuid4().hex[:12]}")
    return Side(CountingS3(config), key=config.url)


@pytest.fixture
async def mirrors(tmp_path: Path) -> AsyncIterator[WorkspaceMirrors]:
    found = WorkspaceMirrors(tmp_path / "mirrors")
    yield found
    found.close()


# ==== helpers =============================================================================


async def put(workspace: Workspace, files: dict[str, str | bytes]) -> None:
    """Write files to the store, as the file tools of another worker would."""
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        await workspace.write_bytes(path, data)


async def stored(side: Side) -> dict[str, bytes]:
    """Every file in the store and its content (the calls it takes are not counted)."""
    workspace = side.workspace
    found = {path: await workspace.read_bytes(path) for path in await workspace.walk(".")}
    side.calls.clear()
    return found


def local(folder: Path) -> dict[str, bytes]:
    """Every regular file of a local folder and its content; links are not followed."""
    found = {}
    for where, _folders, names in os.walk(folder):
        for name in names:
            path = Path(where) / name
            if path.is_file() and not path.is_symlink():
                found[path.relative_to(folder).as_posix()] = path.read_bytes()
    return found


def rewrite(path: Path, content: bytes) -> None:
    """Write a file in place, as a command does; same size means same size on disk."""
    with path.open("r+b" if path.exists() else "wb") as out:
        out.truncate(0)
        out.write(content)


async def push(mirrors: WorkspaceMirrors, side: Side) -> SyncReport:
    side.calls.clear()
    return await mirrors.push(side.workspace, side.key)


async def pull(mirrors: WorkspaceMirrors, side: Side) -> Path:
    side.calls.clear()
    return await mirrors.pull(side.workspace, side.key)


BINARY = bytes(range(256)) * 4 + b"\xff\xfe\x00\x80 not utf-8 \xc3\x28"

FILES: dict[str, str | bytes] = {
    "README.md": "# project\n",
    "src/main.py": "print('hi')\n",
    "src/pkg/deep/mod.py": "x = 1\n",
    "data/blob.bin": BINARY,
    ".hidden/config": "k=v\n",
}


# ==== pull ================================================================================


async def test_first_pull_brings_everything_and_a_second_downloads_nothing(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    await put(side.workspace, FILES)
    await side.workspace.mkdir("empty/inner")

    folder = await pull(mirrors, side)
    assert local(folder) == {p: c.encode() if isinstance(c, str) else c for p, c in FILES.items()}
    assert (folder / "data/blob.bin").read_bytes() == BINARY  # byte-exact, not UTF-8
    assert (folder / "empty/inner").is_dir()
    assert sorted(side.calls.reads) == sorted(FILES)

    assert await pull(mirrors, side) == folder
    assert side.calls.reads == []
    if isinstance(side.workspace, CountingS3):
        assert side.calls.requests == ["LIST ."]  # one listing, nothing else

    report = await push(mirrors, side)  # nothing changed on either side
    assert (side.calls.writes, side.calls.deletes) == ([], [])
    assert (report.downloaded, report.uploaded, report.deleted_remote) == (len(FILES), 0, 0)
    assert (report.skipped, report.conflicts) == ((), ())
    if isinstance(side.workspace, CountingS3):
        assert side.calls.requests == ["LIST ."]


async def test_changes_in_the_store_reach_the_mirror(side: Side, mirrors: WorkspaceMirrors) -> None:
    await put(side.workspace, FILES)
    await side.workspace.mkdir("going")
    folder = await pull(mirrors, side)

    await put(
        side.workspace,
        {"README.md": "# PROJECT\n", "src/pkg/deep/new.py": "y = 2\n", "data/blob.bin": b"\x00"},
    )
    await side.workspace.delete("src/main.py")
    await side.workspace.delete(".hidden", recursive=True)
    await side.workspace.delete("going")
    await side.workspace.mkdir("made/here")

    await pull(mirrors, side)
    assert sorted(side.calls.reads) == ["README.md", "data/blob.bin", "src/pkg/deep/new.py"]
    assert local(folder) == {
        "README.md": b"# PROJECT\n",  # same size, other content: the ETag / mtime tells
        "src/pkg/deep/mod.py": b"x = 1\n",
        "src/pkg/deep/new.py": b"y = 2\n",
        "data/blob.bin": b"\x00",
    }
    assert not (folder / ".hidden").exists()
    assert not (folder / "going").exists()
    assert (folder / "made/here").is_dir()

    report = await push(mirrors, side)
    assert (side.calls.writes, side.calls.deletes) == ([], [])
    assert (report.downloaded, report.deleted_local) == (len(FILES) + 3, 2)


# ==== push ================================================================================


async def test_changes_in_the_mirror_reach_the_store_and_nothing_else_is_sent(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    await put(side.workspace, FILES)
    folder = await pull(mirrors, side)

    rewrite(folder / "README.md", b"# PROJECT\n")  # same size, right after the pull
    (folder / "src/pkg/deep/mod.py").unlink()
    (folder / "new/nested").mkdir(parents=True)
    (folder / "new/nested/made.txt").write_bytes(b"made\n")
    (folder / "blank/inner").mkdir(parents=True)  # an empty folder travels too

    report = await push(mirrors, side)
    assert sorted(side.calls.writes) == ["README.md", "new/nested/made.txt"]
    assert side.calls.deletes == ["src/pkg/deep/mod.py"]
    assert (report.uploaded, report.deleted_remote, report.conflicts) == (2, 1, ())
    assert await stored(side) == {
        "README.md": b"# PROJECT\n",
        "src/main.py": b"print('hi')\n",
        "data/blob.bin": BINARY,
        ".hidden/config": b"k=v\n",
        "new/nested/made.txt": b"made\n",
    }
    assert await side.workspace.list_dir("blank") == ["inner/"]

    # What the push wrote is what the store now lists: the next pull fetches nothing.
    await pull(mirrors, side)
    assert side.calls.reads == []
    report = await push(mirrors, side)
    assert (side.calls.writes, side.calls.deletes, report.uploaded) == ([], [], 0)

    # A folder removed here goes from the store as well.
    (folder / "blank/inner").rmdir()
    (folder / "blank").rmdir()
    await push(mirrors, side)
    assert not await side.workspace.exists("blank")


async def test_a_file_rewritten_at_once_after_a_push_is_sent_again(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    """Same size, within the same tick of the file system clock: still seen."""
    folder = await pull(mirrors, side)
    for content in (b"one", b"two", b"six"):
        rewrite(folder / "counter.txt", content)
        await push(mirrors, side)
        assert side.calls.writes == ["counter.txt"]
        assert await side.workspace.read_bytes("counter.txt") == content


async def test_a_same_size_write_within_one_clock_tick_is_seen(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    """A file system clock ticks every few ms (or 1-2 s): two writes may share an mtime.

    The second write is given the first one's mtime by hand, as a coarse clock would.
    """
    folder = await pull(mirrors, side)
    path = folder / "status.txt"
    rewrite(path, b"50%")
    first = path.stat().st_mtime_ns
    await push(mirrors, side)
    rewrite(path, b"90%")
    os.utime(path, ns=(first, first))  # the same tick as the write before the push
    await push(mirrors, side)
    assert side.calls.writes == ["status.txt"]
    assert await side.workspace.read_bytes("status.txt") == b"90%"


async def test_a_pulled_file_carries_the_stores_time(side: Side, mirrors: WorkspaceMirrors) -> None:
    """Not the time of the copy: a command's write right after it changes the mtime."""
    await put(side.workspace, {"a.txt": "a"})
    folder = await pull(mirrors, side)
    there = (await side.workspace.info("a.txt")).mtime
    assert abs((folder / "a.txt").stat().st_mtime_ns - there * 1e9) < 1e6


async def test_a_file_the_command_writes_during_a_pull_is_kept(tmp_path: Path) -> None:
    """A background command writes a file while a pull fetches the store's version."""

    class Racing(MemoryWorkspace):
        folder: Path | None = None

        async def read_bytes(self, path: str) -> bytes:
            data = await super().read_bytes(path)
            if self.folder is not None:  # the command's write lands between walk and copy
                rewrite(self.folder / path, b"the command's, longer")
            return data

    workspace = Racing({"x.txt": "v1"})
    mirrors = WorkspaceMirrors(tmp_path / "m")
    try:
        folder = await mirrors.pull(workspace, "k")
        await workspace.write_text("x.txt", "v2")
        workspace.folder = folder
        await mirrors.pull(workspace, "k")
        assert (folder / "x.txt").read_bytes() == b"the command's, longer"
        workspace.folder = None
        report = await mirrors.push(workspace, "k")
        assert await workspace.read_text("x.txt") == "the command's, longer"
        assert "x.txt: changed here while" in "\n".join(report.conflicts)
    finally:
        mirrors.close()


async def test_a_file_replaced_by_a_folder_and_a_folder_by_a_file(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    await put(side.workspace, {"thing": "a file", "dir/inside.txt": "in a folder"})
    folder = await pull(mirrors, side)
    (folder / "thing").unlink()
    (folder / "thing").mkdir()
    (folder / "thing/now.txt").write_bytes(b"below")
    (folder / "dir/inside.txt").unlink()
    (folder / "dir").rmdir()
    (folder / "dir").write_bytes(b"a file now")

    report = await push(mirrors, side)
    assert report.skipped == ()
    assert await stored(side) == {"thing/now.txt": b"below", "dir": b"a file now"}


# ==== both sides changed ==================================================================


async def test_a_file_changed_on_both_sides_keeps_the_commands_version(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    await put(side.workspace, {"both.txt": "base", "gone-here.txt": "base", "gone-there.txt": "x"})
    folder = await pull(mirrors, side)
    rewrite(folder / "both.txt", b"local version")
    (folder / "gone-here.txt").unlink()
    rewrite(folder / "gone-there.txt", b"changed here")
    await put(side.workspace, {"both.txt": "remote version", "gone-here.txt": "remote change"})
    await side.workspace.delete("gone-there.txt")

    report = await push(mirrors, side)
    assert sorted(side.calls.writes) == ["both.txt", "gone-there.txt"]
    assert side.calls.deletes == []
    assert await stored(side) == {
        "both.txt": b"local version",  # the command's version wins
        "gone-here.txt": b"remote change",  # deleted here, changed there: kept
        "gone-there.txt": b"changed here",  # changed here, deleted there: back
    }
    assert len(report.conflicts) == 3
    for conflict, told in zip(
        report.conflicts,
        [
            "both.txt: changed here and changed in the workspace",
            "gone-here.txt: deleted here but changed in the workspace",
            "gone-there.txt: changed here and deleted in the workspace",
        ],
        strict=True,
    ):
        assert conflict.startswith(told)
    # The store's version of the file deleted here comes back with the next pull.
    await pull(mirrors, side)
    assert side.calls.reads == ["gone-here.txt"]
    assert (folder / "gone-here.txt").read_bytes() == b"remote change"


async def test_a_pull_keeps_what_a_command_changed_and_has_not_sent(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    """A background command's changes, not pushed yet, survive a foreground pull."""
    await put(side.workspace, {"both.txt": "base", "gone-there.txt": "x", "gone-here.txt": "y"})
    folder = await pull(mirrors, side)
    rewrite(folder / "both.txt", b"local version")
    rewrite(folder / "gone-there.txt", b"changed here")
    (folder / "gone-here.txt").unlink()
    (folder / "new-here.txt").write_bytes(b"not sent yet")
    await put(side.workspace, {"both.txt": "remote version"})
    await side.workspace.delete("gone-there.txt")

    await pull(mirrors, side)
    assert side.calls.reads == []
    assert local(folder) == {
        "both.txt": b"local version",
        "gone-there.txt": b"changed here",
        "new-here.txt": b"not sent yet",
    }
    report = await push(mirrors, side)
    assert sorted(side.calls.writes) == ["both.txt", "gone-there.txt", "new-here.txt"]
    assert side.calls.deletes == ["gone-here.txt"]
    assert await stored(side) == {
        "both.txt": b"local version",
        "gone-there.txt": b"changed here",
        "new-here.txt": b"not sent yet",
    }
    told = "\n".join(report.conflicts)
    assert "both.txt" in told and "gone-there.txt" in told and "gone-here" not in told


async def test_a_push_leaves_what_the_store_changed_in_other_files(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    await put(side.workspace, {"mine.txt": "mine", "theirs.txt": "theirs"})
    folder = await pull(mirrors, side)
    rewrite(folder / "mine.txt", b"mine, edited")
    # The agent's file tools, on another worker, while the command runs.
    await put(side.workspace, {"theirs.txt": "theirs, edited", "fresh.txt": "new there"})

    report = await push(mirrors, side)
    assert side.calls.writes == ["mine.txt"]
    assert report.conflicts == ()
    assert await stored(side) == {
        "mine.txt": b"mine, edited",
        "theirs.txt": b"theirs, edited",
        "fresh.txt": b"new there",
    }
    await pull(mirrors, side)
    assert sorted(side.calls.reads) == ["fresh.txt", "theirs.txt"]
    assert (folder / "theirs.txt").read_bytes() == b"theirs, edited"


# ==== what never reaches the store ========================================================


async def test_links_and_special_files_never_reach_the_store(
    side: Side, mirrors: WorkspaceMirrors, tmp_path: Path
) -> None:
    secret = tmp_path / "credentials"  # the worker's own, outside the mirror
    secret.write_text("aws_secret_access_key = TOPSECRET\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "inner.txt").write_text("TOPSECRET too\n")
    folder = await pull(mirrors, side)
    (folder / "passwd").symlink_to("/etc/passwd")
    (folder / "creds").symlink_to(secret)
    (folder / "linked-dir").symlink_to(outside, target_is_directory=True)
    (folder / "dangling").symlink_to(tmp_path / "nothing")
    os.mkfifo(folder / "pipe")
    (folder / "real.txt").write_bytes(b"fine\n")

    report = await push(mirrors, side)  # returns: the FIFO is never opened for reading
    assert await stored(side) == {"real.txt": b"fine\n"}
    told = "\n".join(report.skipped)
    for name in ("passwd", "creds", "linked-dir", "dangling"):
        assert f"{name}: a symbolic link" in told
    assert "pipe: a named pipe (FIFO)" in told
    # Told once: the next push does not repeat it.
    assert (await push(mirrors, side)).skipped == ()
    assert side.calls.writes == []


async def test_a_pull_never_writes_through_a_link(
    side: Side, mirrors: WorkspaceMirrors, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"untouched")
    outside = tmp_path / "outside"
    outside.mkdir()
    await put(side.workspace, {"target.txt": "v1", "sub/a.txt": "a"})
    folder = await pull(mirrors, side)
    # A command swaps a file and a folder of the copy for links leading out.
    (folder / "target.txt").unlink()
    (folder / "target.txt").symlink_to(victim)
    (folder / "sub/a.txt").unlink()
    (folder / "sub").rmdir()
    (folder / "sub").symlink_to(outside, target_is_directory=True)
    await put(side.workspace, {"target.txt": "v2 from the store", "sub/b.txt": "new"})

    await pull(mirrors, side)
    assert victim.read_bytes() == b"untouched"
    assert list(outside.iterdir()) == []
    assert (folder / "target.txt").is_symlink()
    report = await push(mirrors, side)
    assert "target.txt" in "\n".join(report.conflicts)  # changed on both sides
    assert (await side.workspace.read_bytes("target.txt")) == b"v2 from the store"


async def test_files_over_the_limit_are_skipped_both_ways(side: Side, tmp_path: Path) -> None:
    mirrors = WorkspaceMirrors(tmp_path / "small", max_file_bytes=1000)
    try:
        await put(side.workspace, {"big-there.bin": b"x" * 1001, "fits.bin": b"y" * 1000})
        folder = await pull(mirrors, side)
        assert local(folder) == {"fits.bin": b"y" * 1000}
        (folder / "big-here.bin").write_bytes(b"z" * 5000)

        report = await push(mirrors, side)
        assert side.calls.writes == []
        assert sorted(await side.workspace.walk(".")) == ["big-there.bin", "fits.bin"]
        told = "\n".join(report.skipped)
        assert "big-there.bin: 1,001 bytes, over the limit of 1,000 bytes" in told
        assert "big-here.bin: 5,000 bytes, over the limit of 1,000 bytes" in told
    finally:
        mirrors.close()


async def test_names_a_workspace_cannot_hold_are_skipped(
    side: Side, mirrors: WorkspaceMirrors
) -> None:
    folder = await pull(mirrors, side)
    os.close(os.open(bytes(folder) + b"/latin1-\xe9.txt", os.O_CREAT | os.O_WRONLY))
    (folder / "~home").write_bytes(b"x")
    (folder / "trailing ").write_bytes(b"x")
    (folder / "ok.txt").write_bytes(b"x")

    report = await push(mirrors, side)
    assert side.calls.writes == ["ok.txt"]
    told = "\n".join(report.skipped)
    for shown in ("latin1-\\xe9.txt", "~home", "trailing "):
        assert shown in told
    report.skipped[0].encode("utf-8")  # fit for a message to the model


# ==== the mirror itself ===================================================================


async def test_operations_on_one_mirror_are_serialised(tmp_path: Path) -> None:
    class Watched(MemoryWorkspace):
        """Logs when a listing starts and ends, yielding to the loop in between."""

        def __init__(self) -> None:
            super().__init__()
            self.log: list[str] = []

        async def list_dir(self, path: str) -> list[str]:
            if path == ".":
                self.log.append("begin")
                for _ in range(5):
                    await asyncio.sleep(0)  # a yield, as a network call makes (ok)
            found = await super().list_dir(path)
            if path == ".":
                self.log.append("end")
            return found

    workspace = Watched()
    await workspace.write_text("a.txt", "a")
    mirrors = WorkspaceMirrors(tmp_path / "m")
    try:
        folder = await mirrors.pull(workspace, "k")
        (folder / "b.txt").write_text("b")
        workspace.log.clear()
        await asyncio.gather(mirrors.push(workspace, "k"), mirrors.pull(workspace, "k"))
        assert workspace.log == ["begin", "end", "begin", "end"]
        assert await workspace.read_text("b.txt") == "b"
    finally:
        mirrors.close()


async def test_a_store_failure_propagates_as_itself(tmp_path: Path) -> None:
    class Failing(MemoryWorkspace):
        async def read_bytes(self, path: str) -> bytes:
            raise ApplicationError("store down", type="ObjectStoreUnavailable")

    workspace = Failing({f"f{i}.txt": "x" for i in range(5)})
    mirrors = WorkspaceMirrors(tmp_path / "m")
    try:
        with pytest.raises(ApplicationError, match="store down"):
            await mirrors.pull(workspace, "k")
    finally:
        mirrors.close()


async def test_folders_are_digests_and_close_removes_them(tmp_path: Path) -> None:
    mirrors = WorkspaceMirrors()  # a temporary root of its own
    one = await mirrors.pull(MemoryWorkspace({"a.txt": "a"}), "s3://bucket/agents/../x")
    two = await mirrors.pull(MemoryWorkspace(), "s3://bucket/agents/two")
    assert one != two and one.parent == two.parent
    assert len(one.name) == 32 and set(one.name) <= set("0123456789abcdef")
    assert (one / "a.txt").read_text() == "a"
    assert await mirrors.push(MemoryWorkspace(), "never pulled") == SyncReport()
    mirrors.close()
    assert not one.exists() and not two.exists() and not one.parent.exists()

    kept = tmp_path / "given"
    mirrors = WorkspaceMirrors(kept)
    folder = await mirrors.pull(MemoryWorkspace({"a.txt": "a"}), "k")
    mirrors.close()
    assert not folder.exists() and kept.is_dir()  # a given root stays, the copy goes
    with pytest.raises(RuntimeError):
        await mirrors.pull(MemoryWorkspace(), "k")


async def test_a_leftover_folder_is_not_trusted(tmp_path: Path) -> None:
    """A copy from an earlier process, without its manifest, is wiped, not sent back."""
    workspace = CountingMemory()
    await workspace.write_text("a.txt", "store")
    first = WorkspaceMirrors(tmp_path / "m")
    folder = await first.pull(workspace, "k")
    (folder / "a.txt").write_text("stale")
    (folder / "stale.txt").write_text("stale")
    second = WorkspaceMirrors(tmp_path / "m")  # the worker restarted
    try:
        assert await second.pull(workspace, "k") == folder
        assert local(folder) == {"a.txt": b"store"}
        await second.push(workspace, "k")
        assert workspace.calls.writes == []
    finally:
        second.close()


# ==== idle copies ==========================================================================


async def test_idle_copies_are_dropped_unless_a_command_runs_there(tmp_path: Path) -> None:
    """A worker's disk does not grow with every agent; a copy in use stays."""
    mirrors = WorkspaceMirrors(tmp_path / "mirrors", max_idle_seconds=0.0)
    try:
        busy, idle = Side(CountingMemory(), "busy"), Side(CountingMemory(), "idle")
        for side in (busy, idle):
            await put(side.workspace, {"f.txt": side.key})
        busy_folder, idle_folder = await pull(mirrors, busy), await pull(mirrors, idle)
        assert await mirrors.drop_idle(keep=[busy_folder]) == ["idle"]
        assert busy_folder.is_dir() and not idle_folder.exists()
        # Dropped is not lost: the next pull fetches the files again.
        assert local(await pull(mirrors, idle)) == {"f.txt": b"idle"}
        assert idle.calls.reads
    finally:
        mirrors.close()
