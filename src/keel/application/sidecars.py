"""The main job's sidecar processes (:mod:`keel.io.sidecar`), for the command line.

``keel train`` starts the sidecar of the registry before it imports the training modules, so that MLflow's import
begins about 0.1 s sooner; the command line may not import ``keel.io`` itself. This module imports nothing else of
keel's.
"""

from keel.io.sidecar import sidecar

__all__ = ["sidecar"]
