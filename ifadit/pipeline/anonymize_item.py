"""The per-item function every engine calls: an image or a video, anonymized into its staged output.

Apart from `anonymize` (images) and `anonymize_video` (which builds on it), so neither imports the other back.
"""

from __future__ import annotations

from pathlib import Path

from ifadit.pipeline.anonymize import ItemResult, RunContext, anonymize_image_item
from ifadit.pipeline.anonymize_video import anonymize_video_item
from ifadit.pipeline.inputs import Item
from ifadit.pipeline.progress import FrameProgress


def anonymize_item(
    item: Item, ctx: RunContext, staged: Path, on_frame: FrameProgress | None = None
) -> ItemResult:
    """Steps 1-7 for one image or video into `staged`; a video reports `on_frame(done, total)`."""
    if item.kind == "video":
        return anonymize_video_item(item, ctx, staged, on_frame)
    return anonymize_image_item(item, ctx, staged)
