"""A full disk: the data directory (SQLite database, stored files, scratch) on a 40 MB
tmpfs, filled to the last byte while jobs are queued.

Creates that must write answer 507 in their dialect's envelope with Retry-After (never a
plain-text 500), polls still answer, and every accepted job completes once space is
freed. Where this process may not mount a tmpfs, a full disk is made at the storage
layer instead: writes of the local store fail with the operating system's ENOSPC.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from kinema.storage.local import LocalStorage
from tests.fault_support import (
    assert_unavailable,
    create_request,
    finished,
    poll,
    wait_for,
    wire_id,
)
from tests.hardening_support import quick_settings
from tests.support import live_server

WITH_INPUTS = ("aimlapi", "gemini", "vertex", "unified", "v1")  # each stores an image


class Disk:
    def __init__(self, root: Path, mounted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.mounted = mounted
        self.monkeypatch = monkeypatch
        self.filler = root / "filler"

    def fill(self) -> None:
        if not self.mounted:
            self._refuse_writes()
            return
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT)
        try:
            for size in (2**20, 4096, 1):  # to the last byte
                with suppress(OSError):
                    while os.write(descriptor, b"\0" * size):
                        pass
        finally:
            os.close(descriptor)
        with pytest.raises(OSError, match="No space left"):
            (self.root / "probe").write_bytes(b"x")

    def free(self) -> None:
        if self.mounted:
            self.filler.unlink()
        else:
            self.monkeypatch.undo()

    def _refuse_writes(self) -> None:
        def full(*_args: object, **_kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        for name in ("put_bytes", "put_file", "copy"):
            self.monkeypatch.setattr(LocalStorage, name, full)


@contextmanager
def small_disk(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    path.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    mounted = mount.returncode == 0
    try:
        yield Disk(path, mounted, monkeypatch)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.timeout(300)
def test_a_full_disk_is_507_with_retry_after_and_queued_jobs_finish_once_freed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with small_disk(tmp_path / "disk", monkeypatch) as disk:
        settings = quick_settings(tmp_path, frame_s=0.2, data_dir=disk.root / "data")
        with live_server(settings, workers=1) as server, server.client() as client:
            client.timeout = httpx.Timeout(30)
            accepted = []
            for dialect in WITH_INPUTS:
                path, body = create_request(dialect)
                response = client.post(path, json=body)
                assert response.status_code == 200, response.text
                accepted.append((dialect, wire_id(dialect, response.json())))
            disk.fill()
            for dialect in WITH_INPUTS:
                path, body = create_request(dialect)
                assert_unavailable(dialect, client.post(path, json=body), status=507)
            for dialect, ident in accepted:
                assert poll(client, dialect, ident).status_code == 200
            time.sleep(2)  # the worker meets the full disk meanwhile
            disk.free()

            def all_done() -> bool:
                states = [finished(d, poll(client, d, i).json()) for d, i in accepted]
                return all(state is not None for state in states)

            wait_for(all_done, 120, "the queued jobs to finish")
            states = [finished(d, poll(client, d, i).json()) for d, i in accepted]
    assert states == ["succeeded"] * len(accepted)
