"""Anonymize one video: track faces frame by frame, replace them, write the video and draft its manifest.

Per frame: detect and track (stable track ids), hold the frame back until its tracks are confirmed or not
(`track_video.confirm_tracks`: a face-like object boxed weakly in many frames is left alone), align the
confirmed faces, run the backend, paste back, write the frame;
with `--seal-original` each face's original region is sealed under a context binding that frame's output
digest, the region's box and the manifest's identity (one `manifest_id` per video). The manifest (a sidecar `<video>.ifadit.json`) lists every face with its frame and track id, and
its `pixels_sha256` chains the digests of all decoded output frames (`ifadit.media.digests.frames_digest`). Lossy
H.264 output is decoded once more to digest what a reader will see; sealing originals needs `--lossless`
(FFV1), since an exact restore of a lossy video could not be bit-exact.
"""

from __future__ import annotations

from pathlib import Path

from ifadit.errors import InputError
from ifadit.media.digests import file_sha256, frames_digest
from ifadit.media.manifest import FaceRecord, new_manifest_id, pixels_digest
from ifadit.media.video import DEFAULT_CRF, VideoWriter, probe_video, read_frames
from ifadit.pipeline.anonymize import ItemResult, RunContext, anonymize_frame, face_records
from ifadit.pipeline.inputs import Item
from ifadit.pipeline.progress import FrameProgress
from ifadit.pipeline.track_video import confirm_tracks, track_video


def anonymize_video_item(
    item: Item, ctx: RunContext, staged: Path, on_frame: FrameProgress | None = None
) -> ItemResult:
    """Anonymize the video `item.source` into `staged`; the manifest draft becomes its sidecar in `finish_item`.

    `on_frame(done, total)` is called as frames are written."""
    options = ctx.options
    if options.seal_original and not options.lossless:
        raise InputError(
            f"{item.source}: --seal-original on a video needs --lossless",
            hint="an exact restore of a lossy (H.264) video cannot be bit-exact",
        )
    info = probe_video(item.source)
    writer = VideoWriter(
        staged,
        fps=info.fps,
        codec="ffv1" if options.lossless else "h264",
        crf=DEFAULT_CRF if options.crf is None else options.crf,
        encoder_options=dict(options.encoder_options),
        time_base=info.time_base,
        audio_from=item.source if options.keep_audio and info.has_audio else None,
    )
    records: list[FaceRecord] = []
    digests: list[str] = []
    manifest_id = new_manifest_id()
    rule = options.confirmation(ctx.detector)
    with writer:
        for number, released in enumerate(confirm_tracks(track_video(item.source, ctx.detector), rule)):
            frame, tracked = released.frame, released.faces
            faces = [t.face for t in tracked]
            pixels, aligned = anonymize_frame(frame.image, faces, ctx)
            writer.write(pixels, frame.pts)
            if on_frame is not None:
                on_frame(number + 1, info.frames)
            digest = pixels_digest(pixels)
            digests.append(digest)
            records += face_records(
                frame.image,
                digest,
                faces,
                aligned,
                ctx,
                manifest_id,
                first_index=len(records),
                frame=number,
                track_ids=[t.track_id for t in tracked],
            )
    if not options.lossless:
        digests = [pixels_digest(image) for image in read_frames(staged)]
    return ItemResult(
        item.source,
        item.target,
        item.kind,
        faces=len(records),
        input_sha256=file_sha256(item.source),
        staged=staged,
        manifest=ctx.stamp.manifest(
            frames_digest(digests), records, manifest_id
        ),  # its sidecar comes with finish_item
    )
