"""The main job's sidecar processes (:mod:`keel.io.sidecar`), as the command line starts them.

``keel train`` starts the sidecar of the registry before it imports the training modules, so that MLflow's import
begins about 0.1 s sooner. This module imports nothing else of keel's.
"""

from keel.io.sidecar import sidecar as started_sidecar

__all__ = ["started_sidecar"]
