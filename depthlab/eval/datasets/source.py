"""Read a dataset's files by relative path from its extracted folder or from its tar archive.

The protocol distributes each set as a tar whose members are named `./<relative path>`; the same
relative paths address the extracted folder, so loaders never care which one they were given.
"""
from __future__ import annotations

import abc

import tarfile
from pathlib import Path
from typing import Sequence

from depthlab.errors import UserError


class DataSource(abc.ABC):
    """A dataset root: a folder or a tar archive, addressed by POSIX paths relative to it."""

    def __init__(self, root: Path):
        self.root = root

    @abc.abstractmethod
    def read_bytes(self, rel_path: str) -> bytes:
        ...

    @abc.abstractmethod
    def exists(self, rel_path: str) -> bool:
        ...

    @abc.abstractmethod
    def list_files(self, prefix: str = "") -> list[str]:
        """Sorted relative paths of all files under `prefix` (a folder path, '' for all)."""

    def describe(self, rel_path: str) -> str:
        """A path a user can look for, for messages."""
        return str(self.root / rel_path)


class FolderSource(DataSource):
    def read_bytes(self, rel_path: str) -> bytes:
        return (self.root / rel_path).read_bytes()

    def exists(self, rel_path: str) -> bool:
        return (self.root / rel_path).is_file()

    def list_files(self, prefix: str = "") -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())


class TarSource(DataSource):
    """A tar archive; members may be named `./rel`, `rel` or `/rel`."""

    def __init__(self, root: Path):
        super().__init__(root)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] | None = None

    def _index(self) -> dict[str, tarfile.TarInfo]:
        if self._members is None:
            try:
                self._tar = tarfile.open(self.root)
                members = self._tar.getmembers()
            except (tarfile.TarError, OSError) as error:
                raise UserError(f"cannot read the tar archive {self.root}: {error}") from None
            self._members = {_normalise(m.name): m for m in members if m.isfile()}
        return self._members

    def read_bytes(self, rel_path: str) -> bytes:
        member = self._index().get(_normalise(rel_path))
        if member is None:
            raise FileNotFoundError(rel_path)
        handle = self._tar.extractfile(member)
        assert handle is not None
        return handle.read()

    def exists(self, rel_path: str) -> bool:
        return _normalise(rel_path) in self._index()

    def list_files(self, prefix: str = "") -> list[str]:
        prefix = _normalise(prefix).rstrip("/")
        names = self._index()
        if not prefix:
            return sorted(names)
        return sorted(n for n in names if n.startswith(prefix + "/"))

    def describe(self, rel_path: str) -> str:
        return f"{self.root}:{_normalise(rel_path)}"

    def __getstate__(self):  # an open TarFile does not pickle (DataLoader workers)
        return {"root": self.root, "_tar": None, "_members": None}


def _normalise(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def open_source(data_dir: str | None, dataset: str, archive: str = "",
                probe: str | None = None) -> DataSource:
    """Open `data_dir` as a folder or tar.

    `archive` is the protocol's tar path (e.g. `nyuv2/nyu_labeled_extracted.tar`): a folder that
    holds it (under that path or by its file name) and lacks the extracted `probe` file is read
    through the tar, so `--data-dir` may also name the folder the tar was downloaded to.
    """
    if data_dir is None:
        hint = f" (the extracted folder or the protocol's tar '{archive}')" if archive else ""
        raise UserError(f"dataset '{dataset}' needs a data directory{hint}; pass --data-dir")
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise UserError(f"data directory for '{dataset}' does not exist: {root}")
    if root.is_file():
        if not tarfile.is_tarfile(root):
            raise UserError(f"data path for '{dataset}' is a file but not a tar archive: {root}")
        return TarSource(root)
    if archive and not (probe and (root / probe).is_file()):
        for candidate in _archive_candidates(root, archive):
            if candidate.is_file() and tarfile.is_tarfile(candidate):
                return TarSource(candidate)
    return FolderSource(root)


def _archive_candidates(root: Path, archive: str) -> Sequence[Path]:
    name = Path(archive).name
    return [root / archive, root / name]
