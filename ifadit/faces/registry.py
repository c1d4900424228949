"""Detectors and recognizers by registry name: the one place that knows every implementation.

Kept apart from `detect` and `recognize` so that the optional insightface adapter, which builds on both,
is imported only here and only when asked for (it needs the `[insightface]` extra). Recognizers import
torch, so their module is loaded on first use: a command that only detects starts without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ifadit.faces.detect import Detector, DlibCnnDetector, DlibHogDetector

if TYPE_CHECKING:
    from ifadit.faces.recognize import Recognizer

T = TypeVar("T")


def _insightface_detector(**options: Any) -> Detector:
    """insightface's SCRFD/RetinaFace from the user's model pack (`pack_dir=`)."""
    from ifadit.faces.insightface_adapter import insightface_detector

    return insightface_detector(**options)


def _torch_recognizer(class_name: str) -> Callable[..., Recognizer]:
    """A factory that imports `ifadit.faces.recognize` (and torch) only when it builds `class_name`."""

    def build(**options: Any) -> Recognizer:
        from ifadit.faces import recognize

        recognizer: Recognizer = getattr(recognize, class_name)(**options)
        return recognizer

    return build


def _insightface_recognizer(**options: Any) -> Recognizer:
    """insightface's ArcFace from the user's model pack (`pack_dir=`)."""
    from ifadit.faces.insightface_adapter import insightface_recognizer

    return insightface_recognizer(**options)


DETECTORS: dict[str, Callable[..., Detector]] = {
    "hog": DlibHogDetector,
    "cnn": DlibCnnDetector,
    "insightface": _insightface_detector,
}

RECOGNIZERS: dict[str, Callable[..., Recognizer]] = {
    "dlib": _torch_recognizer("DlibRecognizer"),
    "torch-dlib": _torch_recognizer("TorchDlibRecognizer"),
    "faceres": _torch_recognizer("FaceresRecognizer"),
    "insightface": _insightface_recognizer,
}


def _build(registry: Mapping[str, Callable[..., T]], kind: str, name: str, options: dict[str, Any]) -> T:
    try:
        factory = registry[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(registry)}") from None
    return factory(**{key: value for key, value in options.items() if value is not None})


def get_detector(name: str, **options: Any) -> Detector:
    """A detector by registry name ("hog" default, "cnn", "insightface"); `options` go to its constructor,
    and those set to None keep its default (`thresh`: 0 for dlib's scores, 0.5 for insightface's
    probabilities; `pack_dir` of "insightface": $IFADIT_INSIGHTFACE_PACK)."""
    return _build(DETECTORS, "detector", name, options)


def get_recognizer(name: str, **options: Any) -> Recognizer:
    """A recognizer by registry name ("dlib", "torch-dlib", "faceres", "insightface"); `options` go to its
    constructor, and those set to None keep its default (`pack_dir` of "insightface":
    $IFADIT_INSIGHTFACE_PACK). faceres and insightface raise `ModelError` without their weights."""
    return _build(RECOGNIZERS, "recognizer", name, options)
