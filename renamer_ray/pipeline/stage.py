"""The contract every pipeline stage keeps (after Ray's own batch stages in ``ray.llm``): it
declares the columns it reads (``needs``), the schema it returns (``output``) and the input columns
it deliberately leaves behind (``drops``), checks its input, and carries its own ``map_batches``
arguments, so ``build_dataset`` reads as a list of stages.

Row state, in one place: a row is *open* (still to be worked on) unless it is ``skipped`` (not an
image file), has an ``error`` (failed; the reason travels to the manifest) or is ``pinned`` (an
interrupted earlier attempt already named it; see ``claims.py``).
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa

from renamer_ray.pipeline.columns import table


class StageInputError(TypeError):
    """A stage got a batch without a column it needs: stages are wired in the wrong order."""


def is_open(row: dict) -> bool:
    """Whether the row still needs work: not skipped, not failed, not pinned by an earlier attempt."""
    return row["error"] is None and not row["skipped"] and not row["pinned"]


class Stage:
    """A Ray Data batch UDF over pyarrow tables. Subclasses set ``needs``, ``output`` and ``drops``,
    implement :meth:`rows`, and say how they run in :meth:`map_args`. Task stages are passed to
    ``map_batches`` as configured instances (Ray Data runs a callable object as tasks); a stage that
    holds a model is passed as a class, which Ray Data runs in an actor pool (see ``infer.ModelPool``)."""

    needs: ClassVar[tuple[str, ...]] = ()
    output: ClassVar[pa.Schema]
    drops: ClassVar[tuple[str, ...]] = ()

    @property
    def __name__(self) -> str:
        """What Ray Data calls the operator (progress bars, the dashboard): the stage's class name."""
        return type(self).__name__

    def __call__(self, batch: pa.Table) -> pa.Table:
        if missing := [name for name in self.needs if name not in batch.column_names]:
            raise StageInputError(f"{type(self).__name__} needs the columns {missing}; its input has {batch.column_names}")
        return table(self.rows(batch.to_pylist()), self.output, drop=self.drops)

    def rows(self, rows: list[dict]) -> list[dict]:
        raise NotImplementedError

    def map_args(self) -> dict:
        """Keyword arguments of this stage's ``map_batches`` (resources, concurrency, retries)."""
        return {}

    def apply(self, ds):
        return map_batches(ds, self, batch_format="pyarrow", **self.map_args())


def map_batches(ds, fn, **kwargs):
    """``ds.map_batches`` without Ray 2.60's deprecation warning for retry and restart bounds
    (``max_retries``, ``max_restarts``, ``max_task_retries``): they have no named parameter yet, and
    the warning would reach every CLI user's terminal. Ray 2.64 removes that way of passing them."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return ds.map_batches(fn, **kwargs)
