"""keel: from a dataset to a production model service, driven by one YAML file.

Importing this package is cheap on purpose: it imports nothing heavy (no MLflow, LightGBM, pandas or FastAPI);
each command imports what it needs when it runs.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
