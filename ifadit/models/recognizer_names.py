"""Identity recognizers at a glance: registry names and same-person thresholds.

Plain constants with no torch or dlib import, so run options and the CLI can name them without loading a network
(`ifadit.faces.recognize` wraps the networks as recognizers).
"""

from __future__ import annotations

TORCH_DLIB = "torch-dlib"  # the production recognizer (ifadit.models.dlib_resnet), weights not stored
# dlib's same-person threshold on the L2 distance of its 128-D descriptors: the `loss_metric_` distance
# threshold stored in dlib_face_recognition_resnet_model_v1.dat and used by dlib's examples.
DLIB_THRESHOLD = 0.6
# faceres threshold on the cosine distance (1 - cos), i.e. same person when cosine > 0.5971: the value that
# minimises FAR + FRR on reid/dlib-johns (`python scripts/eval_recognizers.py`; its error rates there and on
# the held-out sets: docs/evaluation.md, "Recognizers").
FACERES_THRESHOLD = 0.4029
