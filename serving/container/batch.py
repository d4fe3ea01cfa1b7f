"""Batch scoring of a CSV extract with the inference container's own code: the same bundle loading and
self-check (`artifact`), the same per-field validation (`validation`), the same scorer (`scoring`).

Input: a CSV with a header. The contract's feature columns are read by name; every other column is ignored,
except the record id columns, which are copied to the output so scores join back to their records. Output: one
line per input row, in input order: `row` (1-based data line), the id columns, `score`, `flag` and `problems`
(how many field problems kept the row from being scored: such rows have empty score and flag). Nothing but
counts is logged or returned: ids and values stay in the output file.

Rows are read, validated and scored in chunks (`chunk_rows`), so memory stays flat whatever the file size;
`workers` > 1 scores chunks in forked processes (the model is loaded once, before the fork).
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TextIO

import numpy as np

from serving.container.artifact import ServedModel, load_served_model
from serving.container.validation import TextMemo

DEFAULT_CHUNK_ROWS = 20_000
OUTPUT_COLUMNS = ("score", "flag", "problems")


class BatchError(ValueError):
    """The batch cannot run; the message names the file or column (never a value) and the fix."""


@dataclass
class BatchSummary:
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    invalid_scores: int = 0
    problems: Counter[str] = field(default_factory=Counter)  # "field: problem" -> count
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "scored": self.scored,
            "rejected": self.rejected,
            "invalid_scores": self.invalid_scores,
            "problems": dict(self.problems.most_common(20)),
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class ChunkResult:
    text: str  # the chunk's output lines, CSV-quoted (rendered where the chunk was scored)
    rows: int
    scored: int
    rejected: int
    invalid_scores: int
    problems: Counter[str]


# The model of the forked scoring processes: set before the pool forks, so each inherits it without pickling.
_MODEL: ServedModel | None = None


def score_chunk(
    model: ServedModel,
    header: list[str],
    rows: list[list[str]],
    first_row: int,
    id_positions: list[int],
    memos: list[TextMemo] | None = None,
) -> ChunkResult:
    """Validate and score rows (all cells as read); one output line per row, in order."""
    width = len(header)
    whole = [i for i, cells in enumerate(rows) if len(cells) == width]
    kinds: Counter[str] = Counter()
    problem_rows: Counter[int] = Counter()
    if len(whole) != len(rows):
        for index in set(range(len(rows))) - set(whole):
            problem_rows[index] += 1
        kinds[f"(row): not {width} cells, as in the header"] += len(rows) - len(whole)
    table = rows if len(whole) == len(rows) else [rows[i] for i in whole]
    transposed = list(zip(*table, strict=True)) if table else [()] * width
    columns: list[Sequence[str] | None] = [
        transposed[header.index(rule.name)] if rule.name in header else None for rule in model.schema.rules
    ]
    matrix, problems = model.schema.from_columns(columns, len(table), memos)
    for problem in problems:
        problem_rows[whole[problem.row]] += 1  # type: ignore[index]
        kinds[f"{problem.field}: {problem.problem}"] += 1  # a contract field and a fixed message, never a value
    keep = np.array([problem_rows.get(i, 0) == 0 for i in whole], dtype=bool)
    scored_rows = [i for i, ok in zip(whole, keep.tolist(), strict=True) if ok]
    scores: dict[int, float | None] = {}
    invalid = 0
    if scored_rows:
        values = model.scorer.probabilities(matrix[keep])
        ok = np.isfinite(values) & (values >= 0.0) & (values <= 1.0)
        invalid = int((~ok).sum())
        scores = {
            row: (float(v) if good else None)
            for row, v, good in zip(scored_rows, values.tolist(), ok.tolist(), strict=True)
        }
    threshold = model.threshold
    lines = []
    for index, cells in enumerate(rows):
        ids = [cells[p] if p < len(cells) else "" for p in id_positions]
        score = scores.get(index)
        if score is None:
            lines.append([str(first_row + index), *ids, "", "", str(problem_rows.get(index, 0))])
        else:
            lines.append([str(first_row + index), *ids, repr(score), "1" if score >= threshold else "0", "0"])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return ChunkResult(
        buffer.getvalue(), len(rows), len(scored_rows) - invalid, len(rows) - len(scored_rows), invalid, kinds
    )


def _score_in_worker(args: tuple[list[str], list[list[str]], int, list[int]]) -> ChunkResult:
    assert _MODEL is not None
    return score_chunk(_MODEL, *args)


def _chunks(reader: Iterator[list[str]], size: int) -> Iterator[tuple[list[list[str]], int]]:
    chunk: list[list[str]] = []
    first = 1
    for cells in reader:
        if not cells:
            continue
        chunk.append(cells)
        if len(chunk) == size:
            yield chunk, first
            first += len(chunk)
            chunk = []
    if chunk:
        yield chunk, first


def score_file(
    model_dir: Path,
    data: Path,
    out: Path,
    *,
    id_columns: list[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = 1,
) -> BatchSummary:
    """Score every row of `data` into `out` (see the module docstring); returns counts only."""
    global _MODEL
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    threadpool_limits(limits=1)  # parallel by process: OpenMP threads on a busy machine spin and slow it 10x
    model = load_served_model(model_dir)  # raises ArtifactError with the reason, as /ping would report it
    with data.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, strict=True)
        header = [cell.strip() for cell in next(reader, [])]
        if not header:
            raise BatchError(f"{data} is empty; it needs a header row naming the feature columns")
        ids = _id_columns(model, header, id_columns)
        missing = [rule.name for rule in model.schema.rules if rule.required and rule.name not in header]
        if missing:
            raise BatchError(f"{data} lacks required feature columns: {', '.join(missing)}")
        id_positions = [header.index(name) for name in ids]
        summary = BatchSummary()
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as target:
            writer = csv.writer(target, lineterminator="\n")
            writer.writerow(["row", *ids, *OUTPUT_COLUMNS])
            jobs = ((header, rows, first, id_positions) for rows, first in _chunks(reader, chunk_rows))
            try:
                if workers > 1:
                    _MODEL = model
                    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                        _write_all(_in_order(pool, jobs, 2 * workers), target, summary)
                else:
                    _write_all((score_chunk(model, *job) for job in jobs), target, summary)
            except csv.Error as exc:
                raise BatchError(
                    f"{data} is not valid CSV at line {reader.line_num}: {str(exc).split(':')[0]}"
                ) from None
            finally:
                _MODEL = None
    summary.seconds = time.perf_counter() - started
    return summary


def _in_order(
    pool: ProcessPoolExecutor, jobs: Iterator[tuple[list[str], list[list[str]], int, list[int]]], ahead: int
) -> Iterator[ChunkResult]:
    """Results in input order with at most `ahead` chunks in flight (Executor.map would read the whole file)."""
    pending: deque[Future[ChunkResult]] = deque()
    for job in jobs:
        pending.append(pool.submit(_score_in_worker, job))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _write_all(results: Iterator[ChunkResult], target: TextIO, summary: BatchSummary) -> None:
    for result in results:
        target.write(result.text)
        summary.rows += result.rows
        summary.scored += result.scored
        summary.rejected += result.rejected
        summary.invalid_scores += result.invalid_scores
        summary.problems.update(result.problems)


def _id_columns(model: ServedModel, header: list[str], requested: list[str] | None) -> list[str]:
    if requested:
        missing = [name for name in requested if name not in header]
        if missing:
            raise BatchError(f"id column(s) {', '.join(missing)} not in the data's header")
        features = [name for name in requested if name in model.schema.names]
        if features:
            raise BatchError(f"{', '.join(features)} are feature columns, not record ids")
        return requested
    return []
