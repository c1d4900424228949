"""`ifadit eval` as numbered steps: load the set, anonymize, score anonymity, utility and colour, then (reversible
backends) recovery, wrong keys, diversity and attacks; speed is timed on the way.

Everything random is drawn from `seed` (keys, attack training), so the same inputs give the same metrics
except the timings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ifadit.backends.base import Backend, get_backend
from ifadit.eval.anonymity import anonymity
from ifadit.eval.attacks import average_crops, invert, key_search_rate, train_inversion
from ifadit.eval.colour import colour
from ifadit.eval.dataset import load_eval_set
from ifadit.eval.diversity import consistency, key_diversity
from ifadit.eval.metrics import frechet_distance
from ifadit.eval.provenance import training_warning
from ifadit.eval.recovery import identity_cosine, recovery
from ifadit.eval.reid import ReidSet
from ifadit.eval.reversible import ReversibleImages, embed_images, score
from ifadit.eval.utility import utility
from ifadit.faces.blend import default_mask_scale
from ifadit.faces.distance import paired_distances
from ifadit.faces.recognize import Recognizer
from ifadit.faces.registry import get_recognizer
from ifadit.models.ifadit.flow import flip_bit

FRECHET_RECOGNIZER = "faceres"  # the independent recognizer's features give the Fréchet distance
MIN_REVERSIBLE_KEYS = 3  # the evaluation key, a second key and an unrelated key
SAMPLE_FACES = 8  # faces shown in the report's sample grid
NEAR_KEY_BITS = (0, 127, 255)  # one-bit-off keys flip the first, a middle and the last bit of the material


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how hard."""

    data: Path  # folder-per-identity set (`<identity>/<image>`) or a flat folder of images
    limit: int | None = None  # use this many images spread over the set (None: all)
    seed: int = 0  # draws the random keys and the attack network's training
    attack_steps: int = 300  # training steps of the learned inversion attack


@dataclass
class BackendResult:
    """Metrics of one backend (`metrics` is what metrics.json holds) and a few sample crops for the report."""

    backend: str
    metrics: dict[str, Any]
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # row name -> uint8 [K,S,S,3]


def random_keys(count: int, seed: int) -> list[bytes]:
    """`count` random 32-byte keys drawn from `seed` (no vault involved)."""
    rng = np.random.default_rng(seed)
    return [rng.bytes(32) for _ in range(count)]


def load_set(options: EvalOptions, size: int) -> ReidSet:
    """Step 1: the set's faces as canonical crops of `size` px."""
    return load_eval_set(options.data, size=size, limit=options.limit)


def _timed(run: Callable[[], np.ndarray], faces: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = run()
    return out, 1000.0 * (time.perf_counter() - start) / max(faces, 1)


def _match(recognizer: Recognizer, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.asarray(paired_distances(a, b, recognizer.metric)) < recognizer.threshold))


def _reversible(
    backend: Backend,
    crops: np.ndarray,
    anonymized: np.ndarray,
    labels: Sequence[str],
    recognizers: Sequence[Recognizer],
    originals: dict[str, np.ndarray],
    anonymized_embedded: dict[str, np.ndarray],
    keys: Sequence[bytes],
    options: EvalOptions,
) -> tuple[dict[str, Any], np.ndarray, float]:
    """Steps 5-7: recovery, wrong keys, diversity, consistency and attacks; returns metrics, restored, ms."""
    if len(keys) < MIN_REVERSIBLE_KEYS:
        raise ValueError(f"a reversible backend needs at least {MIN_REVERSIBLE_KEYS} keys, got {len(keys)}")
    key, wrong = keys[0], list(keys[1:])
    restored, restore_ms = _timed(lambda: backend.restore_crops(anonymized, key), len(crops))
    wrong_restores = tuple(backend.restore_crops(anonymized, k) for k in wrong)
    images = ReversibleImages(
        original=crops,
        anonymized=anonymized,
        anonymized_other=tuple(backend.anonymize_crops(crops, k) for k in wrong),
        restored=restored,
        restored_random=wrong_restores,
        restored_near=tuple(backend.restore_crops(anonymized, flip_bit(key, bit)) for bit in NEAR_KEY_BITS),
    )
    averaged = average_crops(wrong_restores)
    half = max(1, len(crops) // 2)  # the attacker's training faces; the rest are the test faces
    known = wrong[: max(1, len(wrong) - 1)]
    pairs = [backend.anonymize_crops(crops[:half], k) for k in known]
    net = train_inversion(
        np.concatenate(pairs),
        np.concatenate([crops[:half]] * len(known)),
        steps=options.attack_steps,
        seed=options.seed,
    )
    inverted = invert(net, anonymized[half:]) if half < len(crops) else invert(net, anonymized)
    inverted_target = crops[half:] if half < len(crops) else crops
    per: dict[str, dict[str, Any]] = {}
    for recognizer in recognizers:
        original = originals[recognizer.name]
        already = {"original": original, "anonymized": anonymized_embedded[recognizer.name]}
        embedded = embed_images(images, recognizer, already)
        metric, threshold = recognizer.metric, recognizer.threshold
        per[recognizer.name] = {
            **score(images, recognizer, embedded).to_dict(),
            "identity_cosine": identity_cosine(original, embedded["restored"][0]),
            "key_diversity": key_diversity(
                embedded["anonymized"] + embedded["anonymized_other"], metric, threshold
            ),
            "consistency": consistency(embedded["anonymized"][0], labels, metric, threshold),
            "key_search": key_search_rate(original, embedded["restored_random"], metric, threshold),
            "averaging": _match(recognizer, original, recognizer.embed(averaged)),
            "inversion": _match(recognizer, recognizer.embed(inverted_target), recognizer.embed(inverted)),
        }
    metrics = {
        "recovery": recovery(crops, restored).to_dict(),
        "wrong_keys": len(wrong),
        "near_keys": len(NEAR_KEY_BITS),
        "inversion_known_keys": len(known),
        "inversion_test_faces": len(inverted),
        "by_recognizer": per,
    }
    return metrics, restored, restore_ms


def evaluate_backend(
    backend: Backend,
    faces: ReidSet,
    recognizers: Sequence[Recognizer],
    originals: dict[str, np.ndarray],
    keys: Sequence[bytes],
    options: EvalOptions,
) -> BackendResult:
    """Steps 2-7 for one backend on crops already at its `crop_size`; `originals` are the recognizers'
    embeddings of `faces.crops`."""
    crops, labels = faces.crops, faces.labels
    key = keys[0] if keys else None
    anonymized, anonymize_ms = _timed(lambda: backend.anonymize_crops(crops, key), len(crops))
    embedded = {r.name: r.embed(anonymized) for r in recognizers}
    anonymity_rows = [
        anonymity(r.name, originals[r.name], embedded[r.name], labels, r.metric, r.threshold).to_dict()
        for r in recognizers
    ]
    frechet = (
        frechet_distance(originals[FRECHET_RECOGNIZER], embedded[FRECHET_RECOGNIZER])
        if FRECHET_RECOGNIZER in originals
        else None
    )
    metrics: dict[str, Any] = {
        "backend": backend.name,
        "model_id": getattr(backend, "model_id", None),  # model backends: the weights these figures belong to
        "reversible": backend.reversible,
        "crop_size": crops.shape[1],
        "anonymity": anonymity_rows,
        "utility": utility(crops, anonymized, frechet).to_dict(),
        "colour": colour(
            crops,
            anonymized,
            lambda grey: backend.anonymize_crops(grey, key),
            default_mask_scale(backend.reversible),
            backend.colour_match,
        ).to_dict(),
        "speed": {"anonymize_ms_per_face": anonymize_ms, "restore_ms_per_face": None},
        "reversible_metrics": None,
    }
    samples = {"original": crops[:SAMPLE_FACES], "anonymized": anonymized[:SAMPLE_FACES]}
    if backend.reversible:
        reversible, restored, restore_ms = _reversible(
            backend, crops, anonymized, labels, recognizers, originals, embedded, keys, options
        )
        metrics["reversible_metrics"] = reversible
        metrics["speed"]["restore_ms_per_face"] = restore_ms
        samples["restored"] = restored[:SAMPLE_FACES]
    return BackendResult(backend.name, metrics, samples)


def evaluate(
    options: EvalOptions,
    backends: Sequence[Backend],
    recognizers: Sequence[Recognizer],
    keys: Sequence[bytes],
    warnings: Sequence[str] = (),
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[dict[str, Any], list[BackendResult]]:
    """Evaluate each backend on `options.data`; returns (the metrics.json document, per-backend results).

    `keys[0]` anonymizes (and restores); the rest are the wrong keys and the attacks' random keys.
    """
    if not backends or not recognizers:
        raise ValueError("need at least one backend and one recognizer")
    results, sets, embedded = [], {}, {}
    for backend in backends:
        size = backend.crop_size
        if size not in sets:  # backends sharing a crop size share the crops and their embeddings
            progress(f"loading {options.data} at {size} px")
            sets[size] = load_set(options, size)
            embedded[size] = {r.name: r.embed(sets[size].crops) for r in recognizers}
        faces = sets[size]
        progress(f"evaluating {backend.name} on {len(faces.crops)} faces")
        results.append(evaluate_backend(backend, faces, recognizers, embedded[size], keys, options))
    first = next(iter(sets.values()))
    document = {
        "data": str(options.data),
        "faces": len(first.crops),
        "identities": len(set(first.labels)),
        "missed_images": [str(p) for p in first.missed],
        "seed": options.seed,
        "limit": options.limit,
        "keys": len(keys),
        "recognizers": [{"name": r.name, "metric": r.metric, "threshold": r.threshold} for r in recognizers],
        "warnings": list(warnings),
        "backends": [r.metrics for r in results],
    }
    return document, results


def run_eval(
    options: EvalOptions,
    backend_names: Sequence[str],
    recognizer_names: Sequence[str],
    random_key_count: int,
    key_material: bytes | None = None,
    model_dir: Path | None = None,
    progress: Callable[[str], None] = lambda message: None,
    backend_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[BackendResult]]:
    """Build the backends and recognizers by name, draw the keys and evaluate (what `ifadit eval` runs).

    Keys: `key_material` (a vault key) when given, then `random_key_count` random keys from `options.seed`.
    `model_dir` goes to the ifadit backend; its model card's training data is checked against the set.
    `backend_options[name]` go to backend `name`'s constructor (e.g. reverse-personalization's model_dir).
    """
    from ifadit.backends.ifadit import default_model_dir
    from ifadit.models.model_folder import CARD_FILE

    chosen = backend_options or {}
    if random_key_count < 0:
        raise ValueError(f"--random-keys must be >= 0, got {random_key_count}")
    backends = [
        get_backend(name, **({"model_dir": model_dir} if name == "ifadit" else chosen.get(name, {})))
        for name in backend_names
    ]
    keys = ([key_material] if key_material is not None else []) + random_keys(random_key_count, options.seed)
    warnings = []
    if "ifadit" in backend_names:
        card = (model_dir if model_dir is not None else default_model_dir()) / CARD_FILE
        warning = training_warning(card, options.data)
        if warning is not None:
            warnings.append(warning)
            progress(f"warning: {warning}")
    recognizers = [get_recognizer(name) for name in recognizer_names]
    return evaluate(options, backends, recognizers, keys, warnings, progress)
