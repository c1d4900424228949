"""The Ray engine: step 3 of an anonymize run (`anonymize_item` per item) on a Ray Data actor pool.

The driver (`ifadit.pipeline.batch.anonymize_paths`) keeps the vault: it authorizes, unseals the key once,
signs the manifests, appends the audit entry and publishes. This engine only turns the planned items into
staged outputs with draft manifests, exactly as `run_serial` does, so outputs are byte-identical.

- `ray.data.from_items` carries the input paths (and where each result is staged); every worker reads its
  files itself, so the staging folder (inside the output folder) must be on storage the workers share.
- `map_batches` runs `_Anonymizer`, a callable class: each actor builds the backend and the detector once,
  with `compute=ActorPoolStrategy(size=workers)` and `num_gpus` per actor when asked.
- The key material never enters Ray's object store (which Ray may spill to disk): Ray Data `ray.put`s
  the mapper with its constructor arguments, so those carry only a handle to `_KeyHolder`, a zero-CPU
  actor created for the run with the key as its (small, hence inlined) constructor argument. Each mapper
  asks it once, in `__init__`; the small reply travels inline in the RPC, in memory. The holder is killed
  when the run ends. Nothing logs the key: `UnsealedKey`'s repr hides it and the engine logs nothing.
- An actor that Ray gave a GPU (`--gpus-per-worker`) builds a backend that takes a `device` on "cuda"
  (Ray sets CUDA_VISIBLE_DEVICES per actor); backends without one (blur, pixelate, mask) stay on the CPU.
- A bad input (IfaditError) comes back as a failed item; any other exception stops the run.
Ray is imported only when this engine runs.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ifadit.backends.base import BACKENDS, Backend, backend_parameters, get_backend
from ifadit.errors import EngineUnavailable, IfaditError
from ifadit.pipeline.anonymize import AnonymizeOptions, ItemResult, ManifestStamp, RunContext
from ifadit.pipeline.anonymize_item import anonymize_item
from ifadit.pipeline.inputs import Item
from ifadit.pipeline.staging import Staging
from keyvault import UnsealedKey

if TYPE_CHECKING:
    from ifadit.pipeline.batch import OnItem


def backend_for(name: str, *, gpu: bool, options: tuple[tuple[str, Any], ...] = ()) -> Backend:
    """The backend `name` built with `options`, on "cuda" when `gpu`, its constructor takes a `device`
    and `options` choose none."""
    chosen = dict(options)
    if gpu and name in BACKENDS and "device" not in chosen and "device" in backend_parameters(name):
        chosen["device"] = "cuda"
    return get_backend(name, **chosen)


class _KeyHolder:
    """The run's key, held in one actor's memory for the mappers to fetch (see the module docstring)."""

    def __init__(self, key: UnsealedKey | None) -> None:
        self._key = key

    def key(self) -> UnsealedKey | None:
        return self._key


class _Anonymizer:
    """One Ray actor: the key fetched, the backend and detector built once, then `anonymize_item` per row."""

    def __init__(self, options: AnonymizeOptions, stamp: ManifestStamp, holder: Any) -> None:
        import ray

        key = ray.get(holder.key.remote())
        detector = options.build_detector()
        backend = backend_for(options.backend, gpu=bool(ray.get_gpu_ids()), options=options.backend_options)
        self.ctx = RunContext(options, backend, detector, stamp, key)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for source, target, kind, staged in zip(
            batch["source"], batch["target"], batch["kind"], batch["staged"], strict=True
        ):
            item = Item(Path(source), Path(target), kind)
            try:
                result = anonymize_item(item, self.ctx, Path(staged))
            except IfaditError as exc:
                result = ItemResult(
                    item.source, item.target, item.kind, error=str(exc), exit_code=exc.exit_code
                )
            results.append(pickle.dumps(result))
        return {"index": batch["index"], "result": np.array(results, dtype=object)}


@dataclass(frozen=True)
class RayEngine:
    """Step 3 on Ray: `workers` actors (each with `gpus_per_worker` GPUs), on the cluster at `address`.

    With no address, a running Ray in this process is used, else a local one is started (and shut down
    after the run); "auto" joins the cluster this machine belongs to.
    """

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0
    name: str = "ray"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")

    def run(
        self, items: Sequence[Item], ctx: RunContext, staging: Staging, *, progress: bool, on_item: OnItem
    ) -> list[ItemResult]:
        """Anonymize `items` into `staging` on the actor pool; results in item order."""
        if not items:
            return []
        try:
            import ray
        except ImportError:
            raise EngineUnavailable(
                "--engine ray needs Ray, which is not installed", hint="pip install 'ifadit[ray]'"
            ) from None

        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
        try:
            rows = self._rows(items, staging)
            results = self._map(rows, ctx, progress)
        finally:
            if started:
                ray.shutdown()
        for row, result in zip(rows, results, strict=True):
            if result.error is not None:
                staging.drop(Path(row["staged"]))
            if on_item is not None:
                on_item(result)
        return results

    @staticmethod
    def _rows(items: Sequence[Item], staging: Staging) -> list[dict[str, Any]]:
        return [
            {
                "index": index,
                "source": str(item.source),
                "target": str(item.target),
                "kind": item.kind,
                "staged": str(staging.path_for(item.target)),
            }
            for index, item in enumerate(items)
        ]

    def _map(self, rows: list[dict[str, Any]], ctx: RunContext, progress: bool) -> list[ItemResult]:
        import ray

        ray.data.DataContext.get_current().enable_progress_bars = progress
        holder = ray.remote(num_cpus=0)(_KeyHolder).remote(ctx.key)
        try:
            dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), self.workers * 4))
            mapped = dataset.map_batches(
                _Anonymizer,
                fn_constructor_args=(ctx.options, ctx.stamp, holder),
                compute=ray.data.ActorPoolStrategy(size=self.workers),
                num_gpus=self.gpus_per_worker or None,
                batch_size=1,
            )
            found: dict[int, ItemResult] = {}
            for row in mapped.iter_rows():
                found[int(row["index"])] = pickle.loads(row["result"])
        finally:
            ray.kill(holder)
        return [found[index] for index in range(len(rows))]
