"""The rollback journal that makes a write of a Qlib provider all-or-nothing.

Before a write touches any feature file, the journal records what is needed to undo it: the old
text of ``day.txt`` and ``all.txt``, the old span of every instrument the write touches (which
fixes the old length of its files) and the old bytes of every slot it overwrites or truncates.
Appended bytes need no copy: truncating to the old length removes them. A rebuild instead moves
the whole old ``features`` folder into the journal.

The journal is valid once its manifest exists (written atomically, after the undo data) and the
write is committed when the journal folder is deleted. Rolling back is idempotent, so a crash
during a rollback is repaired by rolling back again.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qlib_assets.storage.atomic import write_bytes_atomic
from qlib_assets.storage.qlib_layout import (
    FLOAT,
    SLOT_BYTES,
    calendar_path,
    feature_file_name,
    features_dir,
    instrument_dirname,
    instruments_path,
)

JOURNAL_DIR = ".journal"
_MANIFEST = "manifest.json"
_UNDO = "undo.bin"
_OLD_FEATURES = "features.old"


@dataclass(frozen=True)
class UndoRegion:
    """Old slots ``first_slot ..`` of every field file of one instrument (slot 0 is the header)."""

    code: str
    first_slot: int
    slots: np.ndarray  # (n_fields, n) float32


class Journal:
    def __init__(self, root: Path, fields: tuple[str, ...]) -> None:
        self.root = root
        self.fields = fields
        self.dir = root / JOURNAL_DIR

    @property
    def manifest_path(self) -> Path:
        return self.dir / _MANIFEST

    @property
    def old_features(self) -> Path:
        return self.dir / _OLD_FEATURES

    def is_open(self) -> bool:
        return self.manifest_path.is_file()

    def begin(
        self,
        touched: dict[str, tuple[int, int] | None],
        undo: list[UndoRegion],
        moves_features: bool = False,
    ) -> None:
        """Record the state a write is about to change; ``touched`` maps code -> old span."""
        self.discard()
        self.dir.mkdir(parents=True)
        entries = []
        offset = 0
        with open(self.dir / _UNDO, "wb") as handle:
            for region in undo:
                data = np.ascontiguousarray(region.slots, dtype=FLOAT).tobytes()
                handle.write(data)
                entries.append([region.code, region.first_slot, region.slots.shape[1], offset])
                offset += len(data)
            handle.flush()
            os.fsync(handle.fileno())
        manifest = {
            "calendar": _read_text(calendar_path(self.root)),
            "instruments": _read_text(instruments_path(self.root)),
            "touched": {code: list(span) if span else None for code, span in touched.items()},
            "undo": entries,
            "moves_features": moves_features,
        }
        write_bytes_atomic(self.manifest_path, json.dumps(manifest).encode())

    def commit(self) -> None:
        self.discard()

    def discard(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)

    def rollback(self) -> None:
        """Restore the provider to the state recorded by :meth:`begin`, then drop the journal."""
        manifest = json.loads(self.manifest_path.read_text())
        features = features_dir(self.root)
        if manifest["moves_features"]:
            if self.old_features.exists():
                if features.exists():
                    shutil.rmtree(features)
                os.replace(self.old_features, features)
        else:
            self._restore_files(manifest, features)
        _restore_text(calendar_path(self.root), manifest["calendar"])
        _restore_text(instruments_path(self.root), manifest["instruments"])
        self.discard()

    def _restore_files(self, manifest: dict, features: Path) -> None:
        regions: dict[str, list[tuple[int, int, int]]] = {}
        for code, first_slot, count, offset in manifest["undo"]:
            regions.setdefault(code, []).append((first_slot, count, offset))
        undo_bytes = (self.dir / _UNDO).read_bytes()
        for code, span in manifest["touched"].items():
            folder = features / instrument_dirname(code)
            if span is None:
                if folder.exists():
                    shutil.rmtree(folder)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            old_slots = span[1] - span[0] + 2
            for field_no, field in enumerate(self.fields):
                fd = os.open(folder / feature_file_name(field), os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    for first_slot, count, offset in regions.get(code, []):
                        start = offset + field_no * count * SLOT_BYTES
                        chunk = undo_bytes[start : start + count * SLOT_BYTES]
                        os.pwrite(fd, chunk, first_slot * SLOT_BYTES)
                    os.ftruncate(fd, old_slots * SLOT_BYTES)
                finally:
                    os.close(fd)


def _read_text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _restore_text(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
    else:
        write_bytes_atomic(path, text.encode())
