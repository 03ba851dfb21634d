"""SQL answers in one shape whichever engine computed them: column names and rows of text, as Athena.

Athena's ``GetQueryResults`` gives every value as text (``VarCharValue``; absent for NULL), formatted by
its engine: decimals with their full scale (``61828.00000000``), timestamps as
``2024-08-08 23:55:00.000``, booleans as ``true``/``false``. ``frame_result`` renders a polars answer
the same way, so the same query prints the same answer on Athena and on the local engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]
    engine: str

    def records(self) -> list[dict[str, str | None]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        return col.dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
    if dtype == pl.Date:
        return col.dt.strftime("%Y-%m-%d")
    if dtype == pl.Boolean:
        return pl.when(col).then(pl.lit("true")).when(~col).then(pl.lit("false"))
    return col.cast(pl.String)


def frame_result(frame: pl.DataFrame, engine: str) -> QueryResult:
    """A polars answer as Athena would print it."""
    text = frame.select(_as_text(name, dtype).alias(name) for name, dtype in frame.schema.items())
    return QueryResult(tuple(frame.columns), tuple(text.iter_rows()), engine)


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b/")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// location: {url!r}")
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


def _as_dir(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _visible(key: str, under: str) -> bool:
    """A data file as Hive and Athena see one: not a folder marker, no part hidden (``_``, ``.``)."""
    rest = key[len(under) :]
    return (
        bool(rest)
        and not rest.endswith("/")
        and not any(part.startswith(("_", ".")) for part in rest.split("/"))
    )


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """The files of a table's registered partitions, split by how the local engine reads them.

    ``hive_files`` sit at ``<table location><k=v/...>/`` (their values can be read off the path and
    pruned by it); ``located`` maps a partition with any other location to its files.
    """

    hive_files: tuple[str, ...]
    located: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]


def plan_scan(
    table_location: str,
    partition_keys: tuple[str, ...],
    partitions: list[tuple[tuple[str, ...], str]],
    urls: list[str],
) -> ScanPlan:
    """Files (``s3://`` URLs) of the registered partitions (values, location) of a table.

    Only files of registered partitions are read, as on Athena; an unpartitioned table reads every
    file under its location.
    """
    root = _as_dir(table_location)
    if not partition_keys:
        return ScanPlan(
            tuple(sorted(u for u in urls if u.startswith(root) and _visible(u, root))), ()
        )
    by_location = {_as_dir(location): values for values, location in partitions}
    files: dict[str, list[str]] = {}
    for url in urls:
        # The nearest enclosing directory that is a registered partition's location owns the file.
        cut = len(url)
        while (cut := url.rfind("/", 0, cut)) > len("s3://"):
            where = url[: cut + 1]
            if where in by_location:
                if _visible(url, where):
                    files.setdefault(where, []).append(url)
                break
    hive: list[str] = []
    located: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for where, found in sorted(files.items()):
        values = by_location[where]
        path = "/".join(f"{k}={v}" for k, v in zip(partition_keys, values, strict=True))
        if where == f"{root}{path}/":
            hive += sorted(found)
        else:
            located.append((values, tuple(sorted(found))))
    return ScanPlan(tuple(hive), tuple(located))
