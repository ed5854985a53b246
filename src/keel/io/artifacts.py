"""Storing a fitted model as files that load without running code, each sha256-checked on load.

A model directory holds:

- ``model.lgb.txt``: a LightGBM booster in LightGBM's own text format (parsed, never executed), or
  ``estimator.skops`` for scikit-learn estimators;
- ``encoding.json``: a LightGBM model's feature pipeline compiled into per-column encodings
  (:mod:`keel.domain.encoding`), plain data, so loading the model needs neither scikit-learn nor skops; or
- ``preprocessor.skops`` for any other pipeline (and in versions written before ``encoding.json``): the fitted
  ``ColumnTransformer`` in skops format, loaded with keel's own list of trusted types (:data:`TRUSTED_TYPES`); a
  file naming any other type is refused, so no pickle runs on any load path; a text pipeline's vocabularies and
  idf weights are not in it but in ``vocabularies.npz`` (:mod:`keel.io.vocabularies`);
- for a blend (:class:`keel.domain.blend.BlendedModel`), instead of the files above: ``members/<i>/``, each
  member's own files as listed above, and ``blend.json``: each member's folder, candidate name, estimator, input
  column names and weight (plain JSON, hashed like every other file);
- ``schema.json``, ``config.yaml``, ``metrics.json``, ``plots/*.png`` and any other files written by training;
- ``MLmodel`` and its input example and environment files (:mod:`keel.io.mlmodel`), so MLflow opens the
  directory through keel's own loader (:mod:`keel.mlflow_model`);
- ``manifest.json``: the sha256 of every other file, plus provenance (data fingerprint, git commit, package
  versions, seed). Its own sha256 is recorded in the registry, so a changed manifest is caught too; it also holds
  the sha256 of its own content (``content_sha256``), which catches a changed manifest where no registry record
  is at hand (MLflow's loaders open the directory alone).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.domain.model import FittedModel
from keel.domain.schema import FeatureSchema
from keel.errors import IntegrityError
from keel.io.files import temporary_file_for
from keel.io.sources import file_sha256 as sha256_file

MANIFEST = "manifest.json"
FORMAT = "keel-model/1"
BOOSTER_FILE = "model.lgb.txt"
ESTIMATOR_FILE = "estimator.skops"
PREPROCESSOR_FILE = "preprocessor.skops"
ENCODING_FILE = "encoding.json"
SCHEMA_FILE = "schema.json"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
CONTENT_KEY = "content_sha256"
BLEND_FILE = "blend.json"
BLEND_FORMAT = "keel-blend/1"
MEMBERS_FOLDER = "members"

TRUSTED_TYPES: tuple[str, ...] = (
    # Types outside skops' default trusted set that keel's own pipelines contain. This list is keel's constant:
    # it is never read from an artifact, so a crafted file cannot widen what gets constructed on load.
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    # HistGradientBoosting keeps a partial of check_array; both are inert references (skops still checks the
    # function a partial wraps, and this is the only one trusted).
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "keel.domain.features.DatetimeParts",
    "keel.domain.derived.DerivedColumn",
    "keel.domain.derived.JoinedText",
)


@dataclass
class LoadedModel:
    """A verified model directory.

    Attributes:
        model: The fitted model, ready to predict.
        manifest: The manifest (provenance and file hashes).
        metrics: The evaluation recorded at training time.
        directory: Where the files are.
    """

    model: FittedModel
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    directory: Path

    @property
    def schema(self) -> FeatureSchema:
        """The feature schema."""
        return self.model.schema


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file with the umask's mode, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = temporary_file_for(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=False, default=_json_default, allow_nan=True)
            out.write("\n")
        os.replace(name, path)
    except BaseException:
        name.unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def save_model(directory: Path, model: FittedModel) -> list[str]:
    """Write the model's own files (estimator, feature pipeline, schema) into ``directory``.

    A LightGBM model whose pipeline compiles is stored as data only (booster text and ``encoding.json``); anything
    else goes through skops.

    Returns:
        The file names written.
    """
    from keel.domain.blend import BlendedModel

    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, BlendedModel):
        return _save_blend(directory, model)
    written = []
    encoding = _encoding_data(model) if model.is_booster else None
    if model.is_booster:
        model.estimator.save_model(str(directory / BOOSTER_FILE))
        written.append(BOOSTER_FILE)
    else:
        import skops.io as sio

        sio.dump(model.estimator, directory / ESTIMATOR_FILE)
        written.append(ESTIMATOR_FILE)
    if encoding is not None:
        write_json(directory / ENCODING_FILE, encoding)
        written.append(ENCODING_FILE)
    else:
        import skops.io as sio

        from keel.io.vocabularies import VOCABULARY_FILE, vocabularies_removed, write_vocabularies

        with vocabularies_removed(model.preprocessor) as vocabularies:
            sio.dump(model.preprocessor, directory / PREPROCESSOR_FILE)
        written.append(PREPROCESSOR_FILE)
        if vocabularies:
            write_vocabularies(directory / VOCABULARY_FILE, vocabularies)
            written.append(VOCABULARY_FILE)
    write_json(directory / SCHEMA_FILE, model.schema.model_dump(mode="json"))
    written.append(SCHEMA_FILE)
    return written


def _save_blend(directory: Path, model: Any) -> list[str]:
    """Each member in ``members/<i>/`` as a model of its own, and ``blend.json`` naming them with their weights."""
    written, members = [], []
    for i, (member, weight, label) in enumerate(zip(model.members, model.weights, model.labels, strict=True)):
        folder = f"{MEMBERS_FOLDER}/{i}"
        written += [f"{folder}/{name}" for name in save_model(directory / folder, member)]
        members.append(
            {
                "folder": folder,
                "candidate": label,
                "estimator": member.estimator_name,
                "weight": weight,
                "feature_names": member.feature_names,
                "categorical_indices": member.categorical_indices,
            }
        )
    write_json(directory / BLEND_FILE, {"format": BLEND_FORMAT, "members": members})
    write_json(directory / SCHEMA_FILE, model.schema.model_dump(mode="json"))
    return [*written, BLEND_FILE, SCHEMA_FILE]


def _encoding_data(model: FittedModel) -> dict[str, Any] | None:
    from keel.domain.encoding import categories_in_code_order, encoding_to_data, fitted_categories

    plan = model.encoding
    if plan is None:
        return None
    if model.preprocessor is None:
        categories = {c.name: categories_in_code_order(c) for c in plan if c.codes is not None}
    else:
        categories = fitted_categories(model.preprocessor)
    return encoding_to_data(plan, categories)


def write_manifest(directory: Path, provenance: dict[str, Any]) -> str:
    """Hash every file in ``directory`` and write ``manifest.json``.

    Args:
        directory: The model directory, complete but for the manifest.
        provenance: Extra fields (estimator, data fingerprint, git commit, package versions, seed, …).

    Returns:
        The sha256 of the manifest file.
    """
    files = {
        str(path.relative_to(directory)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {"format": FORMAT, **{k: v for k, v in provenance.items() if k != CONTENT_KEY}, "files": files}
    manifest[CONTENT_KEY] = _content_sha256(manifest)
    write_json(directory / MANIFEST, manifest)
    return sha256_file(directory / MANIFEST)


def verify_directory(directory: Path, *, manifest_sha256: str | None = None) -> dict[str, Any]:
    """Check every file of a model directory against its manifest.

    Args:
        directory: The model directory.
        manifest_sha256: The manifest's own expected sha256 (recorded in the registry), if known.

    Returns:
        The manifest.

    Raises:
        IntegrityError: The manifest or a file is missing or does not match its recorded sha256.
    """
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise IntegrityError(f"{manifest_path}: the model's manifest is missing; the version is incomplete")
    if manifest_sha256 is not None:
        actual = sha256_file(manifest_path)
        if actual != manifest_sha256:
            raise IntegrityError(
                f"{manifest_path}: sha256 {actual} does not match the registry's {manifest_sha256}; "
                "the manifest was changed after registration"
            )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{manifest_path}: not a readable manifest ({exc})") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("files"), dict)
    ):
        raise IntegrityError(f"{manifest_path}: not a keel model manifest (expected format {FORMAT})")
    recorded = manifest.get(CONTENT_KEY)
    # Manifests written before the content hash existed have none; the registry's record still covers them.
    if recorded is not None and recorded != _content_sha256(manifest):
        raise IntegrityError(
            f"{manifest_path}: its content does not match its recorded {CONTENT_KEY} {recorded}; "
            "the manifest was changed or corrupted after training"
        )
    for name, expected in manifest["files"].items():
        path = (directory / name).resolve()
        if directory.resolve() not in path.parents:
            raise IntegrityError(f"{manifest_path}: file entry {name!r} points outside the model directory")
        if not path.is_file():
            raise IntegrityError(f"{directory / name}: missing; the manifest lists it with sha256 {expected}")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"{directory / name}: sha256 {actual} does not match the manifest's {expected}; "
                "the file was changed or corrupted after training"
            )
    return manifest


def load_model(directory: Path, *, manifest_sha256: str | None = None) -> LoadedModel:
    """Verify and load a model directory.

    Args:
        directory: The model directory.
        manifest_sha256: The manifest's expected sha256 (from the registry).

    Returns:
        The loaded model.

    Raises:
        IntegrityError: A file fails verification or holds a type keel does not trust.
    """
    manifest = verify_directory(directory, manifest_sha256=manifest_sha256)
    schema = FeatureSchema.model_validate_json((directory / SCHEMA_FILE).read_text(encoding="utf-8"))
    files = set(manifest["files"])
    model: FittedModel
    if BLEND_FILE in files:
        model = _load_blend(directory, files, schema)
    else:
        model = _load_fitted(
            directory,
            files,
            schema,
            estimator_name=str(manifest.get("estimator", "unknown")),
            feature_names=list(manifest.get("feature_names", [])),
            categorical_indices=list(manifest.get("categorical_indices", [])),
        )
    metrics_path = directory / METRICS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    return LoadedModel(model=model, manifest=manifest, metrics=metrics, directory=directory)


def _load_fitted(
    directory: Path,
    files: set[str],
    schema: FeatureSchema,
    *,
    estimator_name: str,
    feature_names: list[str],
    categorical_indices: list[int],
    prefix: str = "",
) -> FittedModel:
    """One model's files (already verified), from ``directory``; ``files`` are manifest names, under ``prefix``."""
    preprocessor: Any = None
    compiled = None
    if prefix + ENCODING_FILE in files:
        compiled = _load_encoding(directory / ENCODING_FILE)
    else:
        from keel.io.vocabularies import VOCABULARY_FILE, restore_vocabularies

        preprocessor = _load_skops(directory / PREPROCESSOR_FILE)
        if prefix + VOCABULARY_FILE in files:
            restore_vocabularies(preprocessor, directory / VOCABULARY_FILE)
    if (directory / BOOSTER_FILE).is_file() and prefix + BOOSTER_FILE in files:
        import lightgbm

        try:
            estimator: Any = lightgbm.Booster(model_file=str(directory / BOOSTER_FILE))
        except lightgbm.basic.LightGBMError as exc:
            raise IntegrityError(f"{directory / BOOSTER_FILE}: not a LightGBM model file ({exc})") from None
    elif prefix + ESTIMATOR_FILE in files:
        estimator = _load_skops(directory / ESTIMATOR_FILE)
    else:
        raise IntegrityError(f"{directory}: no model file ({BOOSTER_FILE} or {ESTIMATOR_FILE}) in the manifest")
    return FittedModel(
        schema=schema,
        preprocessor=preprocessor,
        estimator=estimator,
        estimator_name=estimator_name,
        feature_names=feature_names,
        categorical_indices=categorical_indices,
        compiled=compiled,
    )


def _load_blend(directory: Path, files: set[str], schema: FeatureSchema) -> FittedModel:
    """A blend's members (each from its folder, already verified) and weights, as written by :func:`save_model`."""
    from keel.domain.blend import BlendedModel

    path = directory / BLEND_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != BLEND_FORMAT:
            raise ValueError(f"expected format {BLEND_FORMAT}")
        entries = [
            (str(m["folder"]), str(m["candidate"]), str(m["estimator"]), float(m["weight"]),
             [str(n) for n in m["feature_names"]], [int(k) for k in m["categorical_indices"]])
            for m in data["members"]
        ]  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise IntegrityError(f"{path}: not a keel blend description ({exc})") from None
    members, weights, labels = [], [], []
    for folder, label, estimator, weight, names, categorical in entries:
        member_dir = (directory / folder).resolve()
        if directory.resolve() not in member_dir.parents:
            raise IntegrityError(f"{path}: member folder {folder!r} points outside the model directory")
        members.append(
            _load_fitted(
                member_dir,
                files,
                schema,
                estimator_name=estimator,
                feature_names=names,
                categorical_indices=categorical,
                prefix=f"{folder}/",
            )
        )
        weights.append(weight)
        labels.append(label)
    try:
        return BlendedModel.of(members, weights, labels)
    except ValueError as exc:
        raise IntegrityError(f"{path}: {exc}") from None


def _load_encoding(path: Path) -> Any:
    from keel.domain.encoding import encoding_from_data

    try:
        return encoding_from_data(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        raise IntegrityError(f"{path}: not a keel compiled encoding ({exc})") from None


def _content_sha256(manifest: dict[str, Any]) -> str:
    """The sha256 of a manifest's fields but its content hash, as canonical JSON (sorted keys, no spaces)."""
    import hashlib

    body = {k: v for k, v in manifest.items() if k != CONTENT_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not a valid skops archive
        raise IntegrityError(f"{path}: not a valid skops file ({type(exc).__name__}: {exc})") from None
    refused = sorted(untrusted - set(TRUSTED_TYPES))
    if refused:
        raise IntegrityError(f"{path}: refers to type(s) keel does not trust: {', '.join(refused)}; it was not loaded")
    try:
        return sio.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds for a malformed archive
        raise IntegrityError(f"{path}: could not be loaded ({type(exc).__name__}: {exc})") from None
