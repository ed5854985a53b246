"""The ``MLmodel`` file that makes a keel model directory an MLflow model too.

MLflow's tools (``mlflow.pyfunc.load_model``, ``mlflow models serve``, ``spark_udf``) read ``MLmodel``. Its
``python_function`` flavor names keel's own loader module (:mod:`keel.mlflow_model`) and no pickled object: MLflow
imports that module and calls its ``_load_pyfunc(path)``, which verifies every file against keel's manifest before
loading anything. The file also carries a signature derived from the feature schema, a real training row as input
example and the requirements (keel and the libraries that read the model files).

The files written here sit beside keel's own and are written before the manifest, so they are hashed like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.domain.schema import ColumnSchema, FeatureSchema

MLMODEL_FILE = "MLmodel"
LOADER_MODULE = "keel.mlflow_model"
REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
CONDA_FILE = "conda.yaml"
EXAMPLE_FILE = "input_example.json"
SERVING_EXAMPLE_FILE = "serving_input_example.json"
# The libraries a loaded model runs on, pinned in requirements.txt beside keel itself.
PINNED = ("keel", "mlflow", "lightgbm", "scikit-learn", "skops", "pandas", "numpy", "pyarrow")


def input_type(column: ColumnSchema, kind: str) -> str:
    """The MLflow type of a feature column, from its keel type and the kind of the training column's dtype.

    MLflow refuses to narrow types and to widen 64-bit integers to doubles, so the type follows what training
    read, as MLflow's own signature inference does: whole numbers without missing values are ``long``, other
    numbers ``double``; a categorical column of codes takes numbers, one of words strings. Dates read as text stay
    ``string`` (MLflow refuses pandas' string columns for ``datetime``; keel parses them), dates read as
    timestamps (Parquet) are ``datetime``.

    Args:
        column: The feature's schema.
        kind: The numpy kind of the training column (``i``, ``u``, ``f``, ``b``, ``M``, ``O``, …).
    """
    if kind == "b":
        return "boolean"
    if kind in ("i", "u"):
        return "long"
    if kind == "f":
        return "double"
    if kind == "M":
        return "datetime"
    if column.type == "numeric":
        return "double"
    return "string"


def output_type(values: list[Any]) -> str:
    """The MLflow type of the ``prediction`` column of a classifier with these class labels."""
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "long"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "double"
    return "string"


def signature_columns(schema: FeatureSchema, kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """The input columns of the signature: name, MLflow type, and whether the column may be left out.

    A feature that had missing values in training is optional: a request may omit it and the model treats it as
    missing, as it did in training.

    Args:
        schema: The feature schema.
        kinds: The numpy kind of each training column's dtype (columns not in it are typed from the schema alone).
    """
    return [
        {
            "name": column.name,
            "type": input_type(column, kinds.get(column.name, "O")),
            "required": column.missing_rate == 0,
        }
        for column in schema.features
    ]


def write_mlmodel(
    directory: Path,
    schema: FeatureSchema,
    kinds: Mapping[str, str],
    output_columns: list[str],
    packages: dict[str, str],
) -> None:
    """Write ``MLmodel``, its input example and environment files into a model directory.

    Args:
        directory: The model directory (before its manifest is written, so these files are hashed too).
        schema: The feature schema (signature and input example).
        kinds: The numpy kind of each training column's dtype (see :func:`input_type`).
        output_columns: The columns a prediction adds (``prediction`` first, then any probabilities).
        packages: Installed package versions (see :func:`keel.io.provenance.package_versions`).
    """
    write_files(directory, model_spec(schema, kinds, output_columns), packages)


def model_spec(schema: FeatureSchema, kinds: Mapping[str, str], output_columns: list[str]) -> dict[str, Any]:
    """What ``MLmodel`` says of the model, as JSON values (computed without MLflow; see :func:`write_files`).

    Args:
        schema: The feature schema (signature and input example).
        kinds: The numpy kind of each training column's dtype (see :func:`input_type`).
        output_columns: The columns a prediction adds (``prediction`` first, then any probabilities).

    Returns:
        ``inputs`` (:func:`signature_columns`), ``outputs`` (name and MLflow type) and ``example`` (one row).
    """
    inputs = signature_columns(schema, kinds)
    prediction_type = "double" if schema.target.task == "regression" else output_type(schema.target.classes or [])
    outputs = [{"name": output_columns[0], "type": prediction_type}]
    outputs += [{"name": name, "type": "double"} for name in output_columns[1:]]
    example = [_example_value(schema.example.get(c["name"]), c["type"]) for c in inputs]
    return {"inputs": inputs, "outputs": outputs, "example": example}


def write_files(directory: Path, spec: dict[str, Any], packages: dict[str, str]) -> None:
    """Write ``MLmodel``, its input example and environment files for a :func:`model_spec`.

    Args:
        directory: The model directory (before its manifest is written, so these files are hashed too).
        spec: See :func:`model_spec`.
        packages: Installed package versions (see :func:`keel.io.provenance.package_versions`).
    """
    import json
    import platform

    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec

    inputs = spec["inputs"]
    outputs: list[ColSpec | TensorSpec] = [ColSpec(DataType[c["type"]], c["name"]) for c in spec["outputs"]]
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(DataType[c["type"]], c["name"], required=c["required"]) for c in inputs
    ]
    model = Model(
        signature=ModelSignature(inputs=Schema(columns), outputs=Schema(outputs)),
        metadata={"keel_loader": "every file is checked against manifest.json"},
    )
    # The example in MLflow's own layout: a DataFrame in pandas' split orient, and the same as a serving request.
    example = {"columns": [c["name"] for c in inputs], "data": [spec["example"]]}
    (directory / EXAMPLE_FILE).write_text(json.dumps(example), encoding="utf-8")
    (directory / SERVING_EXAMPLE_FILE).write_text(json.dumps({"dataframe_split": example}, indent=2), encoding="utf-8")
    model.saved_input_example_info = {
        "artifact_path": EXAMPLE_FILE,
        "type": "dataframe",
        "pandas_orient": "split",
        "serving_input_path": SERVING_EXAMPLE_FILE,
    }
    pins = [f"{name}=={packages[name]}" for name in PINNED if name in packages]
    (directory / REQUIREMENTS_FILE).write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
    python = platform.python_version()
    _write_yaml(
        directory / PYTHON_ENV_FILE,
        {"python": python, "build_dependencies": ["pip"], "dependencies": [f"-r {REQUIREMENTS_FILE}"]},
    )
    _write_yaml(
        directory / CONDA_FILE,
        {"name": "mlflow-env", "channels": ["conda-forge"], "dependencies": [f"python={python}", "pip", {"pip": pins}]},
    )
    # What mlflow.pyfunc.add_to_model writes, without importing mlflow.pyfunc (a quarter of a second per training).
    model.add_flavor(
        "python_function",
        loader_module=LOADER_MODULE,
        python_version=python,
        env={"conda": CONDA_FILE, "virtualenv": PYTHON_ENV_FILE},
    )
    model.save(str(directory / MLMODEL_FILE))


def _example_value(value: Any, mlflow_type: str) -> Any:
    if value is None:
        return None
    if mlflow_type == "double":
        return float(value)
    if mlflow_type == "long":
        return int(value)
    if mlflow_type == "string":
        return str(value)
    return value


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
