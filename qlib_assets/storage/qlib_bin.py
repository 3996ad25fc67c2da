"""Keeps a Qlib provider directory (calendar, instruments, float32 ``.bin`` features) in sync.

Our own writer, not Qlib's ``dump_bin`` scripts. Invariants after every committed write:

- ``day.txt`` holds every exchange session from the provider's first session through the last
  session written, so a calendar index never changes meaning once written. Sessions skipped
  between the last written session and newly synced ones are kept in the calendar and padded
  with NaN (reported as ``sessions_padded``); syncing them later rewrites them in place.
- An instrument's files run from its first to its last bar; a session inside that span without a
  bar (suspension) is NaN at its calendar index. ``all.txt`` gives the same first and last dates,
  so a delisted instrument ends at its last bar and a late listing starts at its first.
- A bar whose eight fields are all NaN counts as absent: Qlib cannot tell it from a suspension.
- The provider always equals a rebuild from all bars synced so far, byte for byte.

Commit protocol: one writer at a time (a file lock). A sync first records a rollback journal
(see :mod:`qlib_journal`), then writes feature files in place (appending, overwriting a range,
truncating or creating), then replaces ``all.txt`` and last ``day.txt`` atomically, then deletes
the journal, which is the commit point. The writer holds the readers' lock exclusively while it
writes, so a reader through :func:`provider_read.committed_provider` sees the provider before or
after a write, never during one (see :mod:`provider_read`). Any exception rolls the write back
at once; a killed process leaves the journal, which the next writer, the next reader through
``committed_provider`` (or :meth:`QlibProviderWriter.recover`) rolls back.
Files are not fsynced, so the guarantee covers process crashes, not power loss.

Sessions before the provider's first session would shift every calendar index: :meth:`sync`
refuses them and :meth:`rebuild` (from the full history) is the way to add them.
"""

import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from filelock import FileLock

from qlib_assets.calendar import sessions
from qlib_assets.market.schema import FIELD_COLUMNS, canonical
from qlib_assets.storage.atomic import remove_stale_temps, write_bytes_atomic
from qlib_assets.storage.provider_read import writing_excludes_readers
from qlib_assets.storage.qlib_append import Appends, plan_appends, write_appends
from qlib_assets.storage.qlib_journal import Journal, UndoRegion
from qlib_assets.storage.qlib_layout import (
    FLOAT,
    SLOT_BYTES,
    calendar_path,
    feature_file_name,
    features_dir,
    format_calendar,
    format_instruments,
    instrument_dirname,
    instruments_path,
    parse_calendar,
    parse_instruments,
)

LOCK_NAME = ".writer.lock"
_STAGING = ".rebuild"
# Feature-file syscalls release the GIL, so threads overlap them; more threads than cores only
# contend for the file system's journal.
_IO_THREADS = os.cpu_count() or 1


@dataclass(frozen=True)
class SyncResult:
    sessions_appended: int
    sessions_rewritten: int
    sessions_padded: int
    instruments_touched: int
    instruments_removed: int
    files_written: int
    bytes_written: int
    elapsed_seconds: float
    first_session: date | None
    last_session: date | None


@dataclass(frozen=True)
class _Op:
    """One instrument's change: ``block`` goes to calendar indices ``offset ..`` of each field."""

    code: str
    start: int
    offset: int
    block: np.ndarray  # (n_fields, n) float32
    length: int  # values per file afterwards
    whole: bool  # write the file from the header on, replacing it
    truncate: bool
    remove: bool = False


@dataclass(frozen=True)
class _Batch:
    """The new bars as dense blocks over the synced sessions."""

    positions: np.ndarray  # calendar index of each synced session, ascending
    codes: dict[str, int]  # code -> row
    values: np.ndarray  # (n_fields, n_codes, n_sessions) float32, NaN where absent
    present: np.ndarray  # (n_codes, n_sessions) bool


class QlibProviderWriter:
    """Writes the provider at ``root`` from canonical bars (see ``market.schema``).

    ``calendar`` names the exchange whose sessions make ``day.txt``; ``lock_timeout`` is how many
    seconds a write waits for another writer (negative: forever) before ``filelock.Timeout``.
    """

    def __init__(
        self,
        root: Path,
        calendar: str = "XSHG",
        fields: Sequence[str] = FIELD_COLUMNS,
        lock_timeout: float = -1,
    ) -> None:
        self.root = Path(root)
        self.calendar = calendar
        self.fields = tuple(fields)
        self.lock_path = self.root / LOCK_NAME
        self._lock_timeout = lock_timeout
        self._journal = Journal(self.root, self.fields)

    def sessions(self) -> list[date]:
        """The provider's calendar (empty for a new provider)."""
        path = calendar_path(self.root)
        return parse_calendar(path.read_text()) if path.is_file() else []

    def instruments(self) -> dict[str, tuple[date, date]]:
        path = instruments_path(self.root)
        return parse_instruments(path.read_text()) if path.is_file() else {}

    def recover(self) -> bool:
        """Roll back a write that was interrupted; True when there was one."""
        with self._lock(), writing_excludes_readers(self.root):
            return self._recover()

    def sync(self, bars: pl.DataFrame, days: Iterable[date]) -> SyncResult:
        """Write exactly the sessions ``days`` from ``bars``, appending or overwriting them.

        An instrument with no row on one of ``days`` gets NaN there (or ends before it).
        """
        started = time.perf_counter()
        wanted = sorted(set(days))
        if not wanted:
            return self._result(
                0, 0, 0, [], Appends.none(len(self.fields)), self.sessions(), started
            )
        self._check_sessions(wanted)
        frame = _prepare(bars, wanted)
        with self._writing():
            self._recover()
            old_calendar = self.sessions()
            if old_calendar and wanted[0] < old_calendar[0]:
                raise ValueError(
                    f"{self.root}: cannot sync {wanted[0]}, before the provider's first session "
                    f"{old_calendar[0]}: that shifts every calendar index; rebuild() from the "
                    "full history instead"
                )
            first = old_calendar[0] if old_calendar else wanted[0]
            last = max(old_calendar[-1], wanted[-1]) if old_calendar else wanted[-1]
            calendar = list(sessions(self.calendar, first, last))
            if calendar[: len(old_calendar)] != old_calendar:
                raise ValueError(
                    f"{calendar_path(self.root)} disagrees with the {self.calendar} sessions; "
                    "rebuild() the provider"
                )
            index = {day: i for i, day in enumerate(calendar)}
            spans = {code: (index[a], index[b]) for code, (a, b) in self.instruments().items()}
            batch = _batch(frame, wanted, index, self.fields)
            ops, appends, undo, touched = self._plan(batch, spans)
            new_spans = _apply_spans(spans, ops) | appends.spans()
            self._journal.begin(touched, undo)
            try:
                self._apply(features_dir(self.root), ops, appends)
                self._write_text(calendar, new_spans)
                self._journal.commit()
            except BaseException:
                self._journal.rollback()
                raise
        appended = (
            sum(1 for day in wanted if day > old_calendar[-1]) if old_calendar else len(wanted)
        )
        padded = len(calendar) - len(old_calendar) - appended
        return self._result(
            appended, len(wanted) - appended, padded, ops, appends, calendar, started
        )

    def rebuild(self, bars: pl.DataFrame, days: Iterable[date] = ()) -> SyncResult:
        """Replace the provider with ``bars``; its calendar spans the bars' dates and ``days``."""
        started = time.perf_counter()
        bar_days = bars.get_column("date").cast(pl.Date).unique().to_list()
        wanted = sorted(set(bar_days) | set(days))
        if not wanted:
            raise ValueError("rebuild() needs at least one session")
        self._check_sessions(wanted)
        frame = _prepare(bars, wanted)
        calendar = list(sessions(self.calendar, wanted[0], wanted[-1]))
        index = {day: i for i, day in enumerate(calendar)}
        batch = _batch(frame, calendar, index, self.fields)
        with self._writing():
            self._recover()
            ops, appends, _, _ = self._plan(batch, {})
            staging = self.root / _STAGING
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            self._apply(staging, ops, appends)
            self._journal.begin({}, [], moves_features=True)
            try:
                features = features_dir(self.root)
                if features.exists():
                    os.replace(features, self._journal.old_features)
                else:
                    self._journal.old_features.mkdir()
                os.replace(staging, features)
                self._write_text(calendar, _apply_spans({}, ops))
                self._journal.commit()
            except BaseException:
                self._journal.rollback()
                raise
        return self._result(len(calendar), 0, 0, ops, appends, calendar, started)

    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(self.lock_path, timeout=self._lock_timeout)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The writer's lock, with readers excluded while a write is in flight."""
        with self._lock(), writing_excludes_readers(self.root):
            yield

    def _recover(self) -> bool:
        for folder in {calendar_path(self.root).parent, instruments_path(self.root).parent}:
            remove_stale_temps(folder)
        staging = self.root / _STAGING
        if staging.exists():
            shutil.rmtree(staging)
        if self._journal.is_open():
            self._journal.rollback()
            return True
        self._journal.discard()
        return False

    def _check_sessions(self, days: list[date]) -> None:
        valid = set(sessions(self.calendar, days[0], days[-1]))
        bad = [day for day in days if day not in valid]
        if bad:
            raise ValueError(f"not {self.calendar} sessions: {', '.join(map(str, bad[:5]))}")

    def _plan(
        self, batch: _Batch, spans: dict[str, tuple[int, int]]
    ) -> tuple[list[_Op], Appends, list[UndoRegion], dict[str, tuple[int, int] | None]]:
        lo, hi = int(batch.positions[0]), int(batch.positions[-1])
        growing = [
            code for code in batch.codes if (span := spans.get(code)) is not None and span[1] < lo
        ]
        grown = np.array([spans[code] for code in growing], np.int64).reshape(-1, 2)
        appends = plan_appends(
            growing,
            np.array([batch.codes[code] for code in growing], np.int64),
            grown[:, 0],
            grown[:, 1],
            batch.positions,
            batch.values,
            batch.present,
        )
        # Appending needs no undo data: truncating to the old span removes the new slots.
        touched: dict[str, tuple[int, int] | None] = {code: spans[code] for code in growing}
        candidates = (set(batch.codes) - set(growing)) | {
            code for code, (s, e) in spans.items() if s <= hi and e >= lo
        }
        ops: list[_Op] = []
        undo: list[UndoRegion] = []
        for code in sorted(candidates):
            span = spans.get(code)
            op, regions = self._plan_one(code, batch, span)
            if op is not None:
                ops.append(op)
                undo.extend(regions)
                touched[code] = span
        return ops, appends, undo, touched

    def _plan_one(
        self, code: str, batch: _Batch, span: tuple[int, int] | None
    ) -> tuple[_Op | None, list[UndoRegion]]:
        positions = batch.positions
        row = batch.codes.get(code)
        new_at = positions[batch.present[row]] if row is not None else positions[:0]
        if span is None:
            if new_at.size == 0:
                return None, []
            start, end = int(new_at[0]), int(new_at[-1])
            block = _overlay(
                np.full((len(self.fields), end - start + 1), np.nan, FLOAT), start, batch, row
            )
            return _Op(code, start, start, block, end - start + 1, True, False), []

        s, e = span
        inside = positions[(positions >= s) & (positions <= e)]
        if inside.size == 0 and new_at.size == 0:
            return None, []
        old: np.ndarray | None = None
        first, last = _kept_bounds(s, e, positions, new_at)
        if first is None or last is None:
            old = self._read_slots(code, s, 0, e - s + 2)
            first, last = _first_last_kept(old, s, positions, new_at)
        if first is None or last is None:
            full = old if old is not None else self._read_slots(code, s, 0, e - s + 2)
            op = _Op(code, s, s, full[:, :0], 0, False, False, remove=True)
            return op, [UndoRegion(code, 0, full)]

        if first != s:
            full = old if old is not None else self._read_slots(code, s, 0, e - s + 2)
            block = np.full((len(self.fields), last - first + 1), np.nan, FLOAT)
            keep_lo, keep_hi = max(s, first), min(e, last)
            if keep_lo <= keep_hi:
                block[:, keep_lo - first : keep_hi - first + 1] = full[
                    :, keep_lo - s + 1 : keep_hi - s + 2
                ]
            block = _overlay(_blank(block, first, positions), first, batch, row)
            return _Op(code, first, first, block, last - first + 1, True, False), [
                UndoRegion(code, 0, full)
            ]

        changed = positions[(positions >= s) & (positions <= last)]
        bounds = [int(changed[0]), int(changed[-1])] if changed.size else []
        if last > e:
            bounds += [e + 1, last]
        truncate = last < e
        regions = []
        if truncate:
            undo_lo = min([*bounds, last + 1])
            regions.append(
                UndoRegion(
                    code,
                    undo_lo - s + 1,
                    self._read_slots(code, s, undo_lo - s + 1, e - undo_lo + 1),
                )
            )
        if not bounds:
            if not truncate:
                return None, []
            empty = np.empty((len(self.fields), 0), FLOAT)
            return _Op(code, s, last + 1, empty, last - s + 1, False, True), regions
        lo, hi = min(bounds), max(bounds)
        block = np.full((len(self.fields), hi - lo + 1), np.nan, FLOAT)
        if lo <= e:
            kept = self._read_slots(code, s, lo - s + 1, min(hi, e) - lo + 1)
            block[:, : kept.shape[1]] = kept
            if not truncate:
                regions.append(UndoRegion(code, lo - s + 1, kept))
        block = _overlay(_blank(block, lo, positions), lo, batch, row)
        return _Op(code, s, lo, block, last - s + 1, False, truncate), regions

    def _read_slots(self, code: str, start: int, first_slot: int, count: int) -> np.ndarray:
        """Slots ``first_slot ..`` of each field file; the header (slot 0) is checked."""
        folder = features_dir(self.root) / instrument_dirname(code)
        out = np.empty((len(self.fields), count), FLOAT)
        for field_no, field in enumerate(self.fields):
            path = folder / feature_file_name(field)
            with open(path, "rb") as handle:
                header = np.frombuffer(handle.read(SLOT_BYTES), FLOAT)
                if header.size != 1 or int(header[0]) != start:
                    raise ValueError(f"{path}: start index is not {start} as all.txt says")
                handle.seek(first_slot * SLOT_BYTES)
                data = np.frombuffer(handle.read(count * SLOT_BYTES), FLOAT)
            if data.size != count:
                raise ValueError(f"{path}: shorter than all.txt says")
            out[field_no] = data
        return out

    def _apply(self, folder: Path, ops: list[_Op], appends: Appends) -> None:
        names = [feature_file_name(field) for field in self.fields]
        write_appends(folder, names, appends, _IO_THREADS)
        if ops:
            chunks = [ops[i::_IO_THREADS] for i in range(_IO_THREADS)]
            with ThreadPoolExecutor(_IO_THREADS) as pool:
                for done in [pool.submit(_write_ops, folder, names, chunk) for chunk in chunks]:
                    done.result()

    def _write_text(self, calendar: list[date], spans: dict[str, tuple[int, int]]) -> None:
        dated = {code: (calendar[s], calendar[e]) for code, (s, e) in spans.items()}
        write_bytes_atomic(instruments_path(self.root), format_instruments(dated).encode())
        write_bytes_atomic(calendar_path(self.root), format_calendar(calendar).encode())

    def _result(
        self,
        appended: int,
        rewritten: int,
        padded: int,
        ops: list[_Op],
        appends: Appends,
        calendar: list[date],
        started: float,
    ) -> SyncResult:
        written = [op for op in ops if not op.remove]
        return SyncResult(
            sessions_appended=appended,
            sessions_rewritten=rewritten,
            sessions_padded=padded,
            instruments_touched=len(ops) + len(appends.codes),
            instruments_removed=len(ops) - len(written),
            files_written=len(written) * len(self.fields) + appends.files,
            bytes_written=appends.bytes
            + sum((op.block.size + op.whole * len(self.fields)) * SLOT_BYTES for op in written),
            elapsed_seconds=time.perf_counter() - started,
            first_session=calendar[0] if calendar else None,
            last_session=calendar[-1] if calendar else None,
        )


def _prepare(bars: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """Canonical bars of ``days`` without all-NaN rows; rejects stray dates and duplicates."""
    frame = canonical(bars).with_columns(pl.col(FIELD_COLUMNS).fill_null(float("nan")))
    stray = frame.filter(~pl.col("date").is_in(days))
    if stray.height:
        raise ValueError(
            f"bars hold {stray.height} rows outside the synced sessions, e.g. "
            f"{stray['instrument'][0]} on {stray['date'][0]}"
        )
    duplicated = frame.filter(pl.struct("instrument", "date").is_duplicated())
    if duplicated.height:
        raise ValueError(
            f"bars hold {duplicated.height} duplicated (instrument, date) rows, e.g. "
            f"{duplicated['instrument'][0]} on {duplicated['date'][0]}"
        )
    for code in frame["instrument"].unique().to_list():
        instrument_dirname(code)
    return frame.filter(~pl.all_horizontal(pl.col(FIELD_COLUMNS).is_nan()))


def _batch(
    frame: pl.DataFrame, days: list[date], index: dict[date, int], fields: tuple[str, ...]
) -> _Batch:
    # ``frame`` is sorted by instrument then date (``_prepare``), so an instrument's rows are one
    # run and the codes come out in sorted order.
    instrument = frame["instrument"]
    codes = instrument.unique(maintain_order=True).to_list()
    rows = {code: i for i, code in enumerate(codes)}
    row_of = instrument.rle_id().to_numpy().astype(np.int64)
    col_of = pl.Series(days, dtype=pl.Date).search_sorted(frame["date"]).to_numpy().astype(np.int64)
    values = np.full((len(fields), len(codes), len(days)), np.nan, FLOAT)
    for field_no, field in enumerate(fields):
        values[field_no, row_of, col_of] = frame[field].to_numpy().astype(FLOAT)
    present = np.zeros((len(codes), len(days)), bool)
    present[row_of, col_of] = True
    positions = np.array([index[day] for day in days], np.int64)
    return _Batch(positions, rows, values, present)


def _kept_bounds(
    s: int, e: int, positions: np.ndarray, new_at: np.ndarray
) -> tuple[int | None, int | None]:
    """First and last bar after the write when knowable without reading the files.

    The old first/last slots hold bars (invariant); they survive unless the write covers them.
    None means the bound depends on which old slots outside the write hold bars.
    """
    covered = set(positions.tolist())
    new_first = int(new_at[0]) if new_at.size else None
    new_last = int(new_at[-1]) if new_at.size else None
    if s not in covered:
        first: int | None = s if new_first is None else min(s, new_first)
    else:
        first = new_first if new_first is not None and new_first <= s else None
    if e not in covered:
        last: int | None = e if new_last is None else max(e, new_last)
    else:
        last = new_last if new_last is not None and new_last >= e else None
    return first, last


def _first_last_kept(
    old: np.ndarray, s: int, positions: np.ndarray, new_at: np.ndarray
) -> tuple[int | None, int | None]:
    has_bar = ~np.all(np.isnan(old[:, 1:]), axis=0)
    covered = positions[(positions >= s) & (positions < s + has_bar.size)] - s
    has_bar[covered] = False
    kept = np.flatnonzero(has_bar) + s
    found = np.concatenate([kept, new_at])
    if found.size == 0:
        return None, None
    return int(found.min()), int(found.max())


def _blank(block: np.ndarray, offset: int, positions: np.ndarray) -> np.ndarray:
    """NaN at every synced session inside ``block``: what the new bars do not fill is absent."""
    inside = positions[(positions >= offset) & (positions < offset + block.shape[1])] - offset
    block[:, inside] = np.nan
    return block


def _overlay(block: np.ndarray, offset: int, batch: _Batch, row: int | None) -> np.ndarray:
    if row is None:
        return block
    mask = batch.present[row] & (batch.positions >= offset)
    mask &= batch.positions < offset + block.shape[1]
    block[:, batch.positions[mask] - offset] = batch.values[:, row, mask]
    return block


def _apply_spans(spans: dict[str, tuple[int, int]], ops: list[_Op]) -> dict[str, tuple[int, int]]:
    result = dict(spans)
    for op in ops:
        if op.remove:
            result.pop(op.code, None)
        else:
            result[op.code] = (op.start, op.start + op.length - 1)
    return result


def _write_ops(folder: Path, names: list[str], ops: list[_Op]) -> None:
    for op in ops:
        target = folder / instrument_dirname(op.code)
        if op.remove:
            shutil.rmtree(target)
            continue
        if op.whole:
            target.mkdir(parents=True, exist_ok=True)
        header = np.array([op.start], FLOAT).tobytes()
        for field_no, name in enumerate(names):
            data = op.block[field_no].tobytes()
            if op.whole:
                fd = os.open(target / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                payload, at = header + data, 0
            else:
                fd = os.open(target / name, os.O_WRONLY)
                payload, at = data, (op.offset - op.start + 1) * SLOT_BYTES
            try:
                if payload:
                    os.pwrite(fd, payload, at)
                if op.truncate:
                    os.ftruncate(fd, (op.length + 1) * SLOT_BYTES)
            finally:
                os.close(fd)
