"""Face stage: detection, alignment, recognition, blending, tracking."""
