"""The contract every pipeline stage keeps (after Ray's own batch stages in ``ray.llm``).

A stage declares the columns it reads (``reads``), those it adds (``adds``) and those of its input
it leaves behind (``drops``); ``output`` is the schema it returns, which is its input less ``drops``
plus ``adds`` (``tests/unit/test_stages.py`` checks every run's chain of stages against these). It
checks its input, and carries its own ``map_batches`` arguments, so a run's pipeline reads as a
list of stages (``build.py``). Row state (open, skipped, failed, pinned) is in ``rows.py``.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa

from renamer_ray.pipeline.columns import table


class StageInputError(TypeError):
    """A stage got a batch without a column it reads: stages are wired in the wrong order."""


class Stage:
    """A Ray Data batch UDF over pyarrow tables. Subclasses set the contract (``reads``, ``adds``,
    ``drops``, ``output``), implement :meth:`rows`, and say how they run:

    - :meth:`map_args`: the ``map_batches`` arguments (resources, concurrency, retries);
    - :meth:`udf`: what Ray Data runs: the configured instance itself (as tasks), or a class that
      Ray Data starts in each actor of a pool (a stage that holds a model: ``infer.ModelPool``);
    - ``group_by``: a column whose rows with one value come to one call together (a shuffle:
      ``dedupe.Dedupe``), instead of batches."""

    reads: ClassVar[tuple[str, ...]] = ()
    adds: ClassVar[tuple[str, ...]] = ()
    drops: ClassVar[tuple[str, ...]] = ()
    output: ClassVar[pa.Schema]
    group_by: ClassVar[str | None] = None

    @property
    def __name__(self) -> str:
        """What Ray Data calls the operator (progress bars, the dashboard): the stage's class name."""
        return type(self).__name__

    def __call__(self, batch: pa.Table) -> pa.Table:
        if missing := [name for name in self.reads if name not in batch.column_names]:
            raise StageInputError(f"{type(self).__name__} needs the columns {missing}; its input has {batch.column_names}")
        return table(self.rows(batch.to_pylist()), self.output, drop=self.drops)

    def rows(self, rows: list[dict]) -> list[dict]:
        raise NotImplementedError

    def map_args(self) -> dict:
        """Keyword arguments of this stage's ``map_batches`` (or, with ``group_by``, of ``groupby``)."""
        return {}

    def udf(self):
        """What Ray Data runs: this configured instance, as tasks (see the class)."""
        return self

    def apply(self, ds):
        """This stage over the dataset ``ds``."""
        if self.group_by is None:
            return map_batches(ds, self.udf(), batch_format="pyarrow", **self.map_args())
        import ray

        # Task-based sort shuffle: no long-lived aggregator actors competing with the model for CPUs.
        # Set on this pipeline's own DataContext (each dataset carries a copy), not the process's.
        ds.context.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        return ds.groupby(self.group_by, **self.map_args()).map_groups(self.udf(), batch_format="pyarrow")


def map_batches(ds, fn, **kwargs):
    """``ds.map_batches`` without Ray 2.60's deprecation warning for retry and restart bounds
    (``max_retries``, ``max_restarts``, ``max_task_retries``): they have no named parameter yet, and
    the warning would reach every CLI user's terminal. Ray 2.64 removes that way of passing them."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return ds.map_batches(fn, **kwargs)
