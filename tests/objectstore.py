"""A real S3-compatible server for the tests: SeaweedFS, built once from the Go module proxy.

Test infrastructure, not product: nothing under ``activities/`` or ``worker/`` imports it.
The object store code is tested against a real server speaking real signed S3, never a
mock of one.

1. **Build** (:func:`ensure_weed`): ``go install`` refuses SeaweedFS (its ``go.mod`` has
   a ``replace`` directive), so the pinned module is downloaded with ``go mod download``,
   copied to a scratch folder and built with ``go build ./weed`` into the per-user
   cache shared with the Temporal CLI (``~/.cache/duragent/bin/weed``, with a version
   stamp beside it). Minutes, once per machine; ``scripts/bootstrap.sh test`` does it
   before the tests. Without Go, :class:`WeedUnavailable` says so and the tests skip.
2. **Run** (:class:`ObjectStoreServer`): ``weed server`` with its master, volume server,
   filer and S3 gateway on free loopback ports, data in a temporary folder, one
   identity whose keys sign every request; ready when a signed write and read succeed.

Build it by hand with ``python -m tests.objectstore build``; run one in the foreground
with ``python -m tests.objectstore serve`` (it prints the ``AWS_*`` variables to use).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

import obstore
from obstore.store import S3Store

from duragent.activities.objectstore import DEFAULT_REGION, ObjectStoreConfig
from duragent.worker.devserver import (
    _die_with_parent,
    _file_lock,
    _log_to_stderr,
    _run_with_heartbeat,
    _signal_group,
    cache_dir,
)

WEED_MODULE = "github.com/seaweedfs/seaweedfs"
"""Go module of SeaweedFS; the ``weed`` command is its ``./weed`` package."""
PINNED_WEED_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
"""The module version the tests run against (a pseudo-version: SeaweedFS tags are not
semantic versions the module proxy would serve)."""

ACCESS_KEY = "duragent-test-access"
SECRET_KEY = "duragent-test-secret-0123456789"
"""Keys of the one identity the test server knows; every request is signed with them."""

# A cold start (master election, volume registration) takes seconds on an idle
# machine; a loaded CI machine running the suite in parallel needs far more.
_READY_TIMEOUT = 90.0
_PROBE_INTERVAL = 0.2
# `weed server` runs shutdown hooks on SIGTERM, and one of them can wait forever on
# another service of the same process; its data is thrown away anyway, so a short
# grace, then SIGKILL.
_STOP_TIMEOUT = 5.0
_PROBE_BUCKET = "duragent-ready"
# weed reads its TOML settings from WEED_* variables too. A new bucket grows one
# volume, not seven: a session of tests that each make a bucket never runs out.
_ENV = {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
# Its local gRPC sockets are named by port, in /tmp whatever -dir says; a SIGKILLed
# server leaves them behind.
_SOCKETS = ("master", "volume", "filer", "s3")


class WeedUnavailable(RuntimeError):
    """The ``weed`` binary cannot be had here (no Go toolchain, or the build failed)."""


def cached_weed_path() -> Path:
    """Where :func:`ensure_weed` puts the binary: ``cache_dir()/bin/weed``."""
    return cache_dir() / "bin" / "weed"


def _stamp(binary: Path) -> Path:
    return binary.with_name(binary.name + ".version")


def find_weed() -> Path | None:
    """``$DURAGENT_WEED``, else the cached binary when its stamp names the pinned version."""
    if explicit := os.environ.get("DURAGENT_WEED"):
        return Path(explicit)
    binary = cached_weed_path()
    stamp = _stamp(binary)
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == PINNED_WEED_VERSION:
        return binary
    return None


def ensure_weed(*, log: Callable[[str], None] = _log_to_stderr) -> Path:
    """The ``weed`` binary, built from the pinned module when missing.

    ``<cache>/weed.lock`` serialises builds across processes; whoever waits on it
    re-checks and reuses the winner's binary.

    Raises:
        WeedUnavailable: No Go toolchain, or the build failed (with its output's tail).
    """
    found = find_weed()
    if found is not None:
        return found
    if shutil.which("go") is None:
        raise WeedUnavailable(
            "no Go toolchain to build SeaweedFS (the S3-compatible test server); "
            "install Go (https://go.dev/dl/) or set DURAGENT_WEED to a `weed` binary"
        )
    target = cached_weed_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent.parent / "weed.lock", log=log):
        found = find_weed()  # another process may have built it while we waited
        if found is not None:
            return found
        _build(target, log=log)
        _stamp(target).write_text(PINNED_WEED_VERSION + "\n")
    return target


def _build(target: Path, *, log: Callable[[str], None]) -> None:
    """``go mod download`` the pinned module, ``go build ./weed``, rename into place."""
    module = f"{WEED_MODULE}@{PINNED_WEED_VERSION}"
    log(
        f"duragent: building SeaweedFS ({module}) into {target.parent} for the object "
        "store tests. This takes a few minutes, once per machine."
    )
    started = time.monotonic()
    done = subprocess.run(
        ["go", "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        source = Path(json.loads(done.stdout)["Dir"])
    except (ValueError, KeyError) as err:
        raise WeedUnavailable(
            f"`go mod download {module}` failed (exit {done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[-2000:]}"
        ) from err
    # The module cache is read-only and outside any module, hence a writable copy that
    # builds as its own main module (its replace directives then apply).
    with tempfile.TemporaryDirectory(prefix=".weed-build-", dir=target.parent) as scratch:
        tree = Path(scratch) / "src"
        shutil.copytree(source, tree)
        subprocess.run(["chmod", "-R", "u+w", str(tree)], check=True)
        built = Path(scratch) / "weed"
        returncode, tail = _run_with_heartbeat(
            # -trimpath: no scratch path in the binary, so Go's build cache serves a rebuild;
            # -v names each package compiled, for the heartbeat lines.
            ["go", "build", "-C", str(tree), "-trimpath", "-v", "-o", str(built), "./weed"],
            env=os.environ,
            log=log,
        )
        if returncode != 0 or not built.is_file():
            raise WeedUnavailable(
                f"`go build ./weed` of {module} failed (exit {returncode}). Last output:\n"
                + "\n".join(tail)
            )
        os.replace(built, target)  # atomic: no process ever runs a half-written binary
    log(f"duragent: SeaweedFS ready at {target} ({time.monotonic() - started:.0f} s)")


class _Ports(NamedTuple):
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int


class ObjectStoreServer:
    """A ``weed server`` with an S3 gateway on 127.0.0.1, for as long as a test session.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        binary: The ``weed`` binary; :func:`ensure_weed` (which may build it) when ``None``.
        root: Folder for data, configuration and the log; a temporary one that
            :meth:`stop` deletes when ``None``.
    """

    def __init__(self, binary: Path | None = None, *, root: Path | None = None) -> None:
        self._binary = binary
        self._tmp = None if root is not None else Path(tempfile.mkdtemp(prefix="duragent-s3-"))
        self.root = root or self._tmp or Path()
        """Data, configuration and ``weed.log``."""
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = DEFAULT_REGION
        self._ports = _Ports(*_free_ports(len(_Ports._fields)))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The S3 gateway, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self._ports.s3}"

    @property
    def log_file(self) -> Path:
        """Where the server's output goes."""
        return self.root / "weed.log"

    def env(self) -> dict[str, str]:
        """The ``AWS_*`` variables that point a client (or a worker process) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def worker_env(
        self, bucket: str, *, workspace: str = "workspace", store: str = "transcripts"
    ) -> dict[str, str]:
        """What a ``duragent worker`` process needs to keep files and transcripts here.

        Args:
            bucket: An existing bucket of this server.
            workspace: Prefix of the file tools' workspace in it (``DURAGENT_WORKSPACE``).
            store: Prefix of the transcript store in it (``DURAGENT_STORE``).
        """
        return {
            **self.env(),
            "DURAGENT_WORKSPACE": f"s3://{bucket}/{workspace}",
            "DURAGENT_STORE": f"s3://{bucket}/{store}",
        }

    def config(self, bucket: str, prefix: str = "") -> ObjectStoreConfig:
        """The connection to ``s3://bucket/prefix`` on this server, as a worker parses it."""
        return ObjectStoreConfig.from_url(f"s3://{bucket}/{prefix}", self.env())

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh uniquely named one when ``name`` is ``None``).

        Returns:
            Its name.
        """
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        _create_bucket(self._client(name))
        return name

    def start(self, timeout: float = _READY_TIMEOUT) -> None:
        """Start the server and wait until a signed write and read succeed."""
        binary = self._binary or ensure_weed()
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        identities = self.root / "s3.json"
        identities.write_text(json.dumps(self._identities()))
        with self.log_file.open("ab") as log:
            # Own process group: stop() signals weed and anything it spawned.
            self._proc = subprocess.Popen(
                [str(binary), *self._arguments(data, identities)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                # weed reads AWS_* for its own remote storage: it gets none of ours.
                env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **_ENV},
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM, SIGKILL after ``timeout`` seconds, reap; delete a temporary root.

        Never raises: a teardown that fails would hide what the tests found.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()  # after SIGKILL the kernel reaps it promptly
        for name in _SOCKETS:
            port = getattr(self._ports, f"{name}_grpc")
            Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, with a header naming the file."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError as err:
            return f"(no log at {self.log_file}: {err})"
        return f"weed log {self.log_file} (tail):\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- private

    def _arguments(self, data: Path, identities: Path) -> list[str]:
        ports = self._ports
        return [
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            # Every port explicit: the gRPC ones default to port + 10000, which nothing
            # guarantees free.
            f"-master.port={ports.master}",
            f"-master.port.grpc={ports.master_grpc}",
            f"-volume.port={ports.volume}",
            f"-volume.port.grpc={ports.volume_grpc}",
            "-filer",
            f"-filer.port={ports.filer}",
            f"-filer.port.grpc={ports.filer_grpc}",
            f"-filer.localSocket={data / 'filer.sock'}",
            "-s3",
            f"-s3.port={ports.s3}",
            f"-s3.port.grpc={ports.s3_grpc}",
            f"-s3.localSocket={data / 's3.sock'}",
            f"-s3.config={identities}",
            # As AWS: a write to a bucket nobody created fails (weed creates it by default).
            "-s3.autoCreateBucket=false",
            # Catalog servers on fixed default ports: off, or two sessions would clash.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Each bucket is a collection with volumes of its own, and tests make a
            # bucket each: small volumes (30 GB by default), as many as the disk holds
            # (sparse files, no preallocation), one more per bucket (see _ENV).
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            # No anonymous statistics sent to the internet from a test run.
            "-master.telemetry=false",
        ]

    def _identities(self) -> dict[str, object]:
        return {
            "identities": [
                {
                    "name": "duragent-tests",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }

    def _client(self, bucket: str) -> S3Store:
        # Short bounds: a probe of a server still booting must not eat the deadline.
        config = replace(self.config(bucket), timeout_seconds=10, connect_timeout_seconds=2)
        return config.client()

    def _wait_ready(self, timeout: float) -> None:
        """Poll until a bucket can be created and an object written and read back."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"weed server exited at start.\n{self.log_tail()}")
            try:
                self._probe()
                return
            except Exception as err:  # not up yet: refused, 5xx, no writable volume
                last = err
            time.sleep(_PROBE_INTERVAL)  # polling interval of a deadline wait (ok)
        raise RuntimeError(
            f"weed server not ready within {timeout:.0f} s (last error: {last}).\n{self.log_tail()}"
        )

    def _probe(self) -> None:
        client = self._client(_PROBE_BUCKET)
        try:
            _create_bucket(client)
        except FileExistsError:
            pass
        obstore.put(client, "probe", b"ready", use_multipart=False)
        if bytes(obstore.get(client, "probe").bytes()) != b"ready":
            raise RuntimeError("probe object read back wrong")


def _create_bucket(client: S3Store) -> None:
    """A signed ``PUT /<bucket>`` (S3 CreateBucket), presigned by obstore.

    obstore has no bucket calls; its presigned URL for the empty key is the bucket's.

    Raises:
        FileExistsError: The bucket exists already.
    """
    url = obstore.sign(client, "PUT", "", timedelta(minutes=5))
    request = urllib.request.Request(url, method="PUT", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace")
        if err.code == 409 and "BucketAlready" in body:
            raise FileExistsError(body) from None
        raise RuntimeError(f"CreateBucket failed ({err.code}): {body[:500]}") from None


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))  # all held open together: no port twice
        return [int(sock.getsockname()[1]) for sock in sockets]


def main(argv: list[str] | None = None) -> int:
    """``build``: build (or find) the binary; ``serve``: run a server until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m tests.objectstore", description=__doc__)
    parser.add_argument("command", choices=["build", "serve"])
    args = parser.parse_args(argv)
    try:
        binary = ensure_weed()
    except WeedUnavailable as err:
        # Not fatal for `bootstrap.sh test`: the object store tests skip and say why.
        print(f"duragent: {err}; the object store tests will skip", file=sys.stderr)
        return 0 if args.command == "build" else 1
    if args.command == "build":
        print(f"duragent: SeaweedFS at {binary}", file=sys.stderr)
        return 0
    with ObjectStoreServer(binary) as server:
        for name, value in server.env().items():
            print(f"export {name}={value}")
        print(f"# log: {server.log_file}; Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on both
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
