"""keel's loader for MLflow's ``python_function`` flavor: what MLflow runs to open a keel version.

Every version's ``MLmodel`` names this module as its ``loader_module``, so ``mlflow.pyfunc.load_model``,
``mlflow models serve`` and ``mlflow.pyfunc.spark_udf`` call :func:`_load_pyfunc` with the version's folder. It
loads through keel's own loading function: every file is checked against the manifest's sha256 first (and the
manifest against ``registry.json`` in an exported folder), a file that does not match is refused by name, and
nothing is unpickled.

This module is an entry point beside the CLI: importing it costs nothing until MLflow calls the loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from keel.io.artifacts import LoadedModel


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> KeelPyfuncModel:
    """Verify and load the keel model in ``path`` (MLflow's loader-module contract).

    Raises:
        IntegrityError: A file is missing or does not match the manifest (named in the message).
    """
    from keel.io import artifacts, exports

    directory = Path(path)
    if (directory / exports.METADATA_FILE).is_file():
        loaded, _ = exports.load_exported(directory)
    else:
        loaded = artifacts.load_model(directory)
    return KeelPyfuncModel(loaded)


class KeelPyfuncModel:
    """A verified keel model behind MLflow's ``predict(DataFrame)`` contract.

    Args:
        loaded: The verified model directory.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    def get_raw_model(self) -> LoadedModel:
        """The loaded keel model (its fitted pipeline, manifest and metrics)."""
        return self.loaded

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score rows as ``keel predict`` does, one output row per input row, in order.

        Args:
            model_input: A DataFrame (or anything ``pandas.DataFrame`` accepts) holding the feature columns; a
                feature that had missing values in training may be left out.
            params: Unused (the model takes no inference parameters).

        Returns:
            ``prediction`` (the label, or the value for regression) and, for classifiers, ``probability_<class>``
            per class: the columns and values ``keel predict`` writes.

        Raises:
            MlflowException: A required feature is missing or a value cannot be read as its column's type
                (MLflow answers such requests with HTTP 400).
        """
        import pandas as pd

        from keel.application.predict import OutputColumns, prediction_columns, score_chunk
        from keel.errors import DataError

        model = self.loaded.model
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        absent = [c.name for c in model.schema.features if c.name not in frame.columns and c.missing_rate > 0]
        if absent:
            frame = frame.assign(**dict.fromkeys(absent))
        try:
            # Only the prediction columns are answered: no input column is carried and no `row` added (so an input
            # column of that name is no clash).
            columns = OutputColumns(keep="none", row_column=None)
            scored, invalid = score_chunk(model, frame, label="model input", output=columns)
            if len(invalid):
                error = next(str(reason) for reason in invalid["error"] if reason)
                raise DataError(f"model input: {len(invalid):,} row(s) cannot be scored (first problem: {error})")
        except DataError as exc:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return scored[prediction_columns(model)]
