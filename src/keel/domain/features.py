"""Feature pipelines: a scikit-learn ``ColumnTransformer`` built from the feature schema.

Two encodings:

- ``ordinal`` for tree ensembles: numbers pass through (missing stays missing), categories become integer codes
  (unseen and missing become missing), which LightGBM and HistGradientBoosting treat as native categoricals.
- ``onehot`` for linear models: numbers are imputed and scaled, categories one-hot encoded.

Text columns get TF-IDF (word and character n-grams) in both; dates become numeric parts (year, month, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from keel.config import FeaturesConfig
from keel.domain.schema import FeatureSchema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer

Encoding = Literal["ordinal", "onehot"]
TREE_ESTIMATORS = frozenset({"lightgbm", "hist_gradient_boosting", "random_forest"})


@dataclass(frozen=True)
class FeaturePlan:
    """The unfitted feature pipeline and what its output columns are.

    Attributes:
        transformer: The ``ColumnTransformer`` to fit on the training features.
        encoding: ``ordinal`` or ``onehot``.
        categorical_columns: Names of the columns encoded as integer codes (ordinal encoding).
    """

    transformer: ColumnTransformer
    encoding: Encoding
    categorical_columns: list[str]


def choose_encoding(features: FeaturesConfig, estimator: str) -> Encoding:
    """The encoding for ``estimator`` unless the config fixes one."""
    if features.encoding != "auto":
        return features.encoding
    return "ordinal" if estimator in TREE_ESTIMATORS else "onehot"


def build_feature_plan(schema: FeatureSchema, features: FeaturesConfig, estimator: str) -> FeaturePlan:
    """Build the unfitted ``ColumnTransformer`` for a schema.

    Args:
        schema: The training data's feature schema.
        features: The features section of the configuration.
        estimator: The estimator name (decides the encoding when it is ``auto``).

    Returns:
        The plan; categorical columns come first in ordinal encoding, so their output indices are
        ``range(len(categorical_columns))``.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    encoding = choose_encoding(features, estimator)
    by_type: dict[str, list[str]] = {}
    for column in schema.features:
        by_type.setdefault(column.type, []).append(column.name)
    numeric = by_type.get("numeric", []) + by_type.get("boolean", [])
    categorical = by_type.get("categorical", [])
    steps: list[tuple[str, Any, Any]] = []
    if encoding == "ordinal":
        if categorical:
            from sklearn.preprocessing import OrdinalEncoder

            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                dtype=np.float64,
            )
            steps.append(("categorical", encoder, categorical))
        if numeric:
            steps.append(("numeric", "passthrough", numeric))
    else:
        # Imported here: a tree model's plan (ordinal codes, numbers passed through) needs neither.
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if categorical:
            onehot = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                min_frequency=features.min_category_frequency if features.min_category_frequency > 1 else None,
                sparse_output=True,
            )
            impute = SimpleImputer(strategy="constant", fill_value="(missing)", missing_values=np.nan)
            steps.append(("categorical", Pipeline([("impute", impute), ("onehot", onehot)]), categorical))
        if numeric:
            scale = Pipeline(
                [("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
            )
            steps.append(("numeric", scale, numeric))
    steps.extend(_derived_steps(features, numeric, encoding))
    for name in by_type.get("datetime", []):
        steps.append((f"datetime_{name}", DatetimeParts(), [name]))
    text_columns = by_type.get("text", [])
    if features.text.join and len(text_columns) > 1:
        from keel.domain.derived import JoinedText

        steps.append(("text", Pipeline([("join", JoinedText()), ("tfidf", text_vectorizer(features))]), text_columns))
        text_columns = []
    for name in text_columns:
        steps.append((f"text_{name}", text_vectorizer(features), name))
    transformer = ColumnTransformer(steps, remainder="drop", sparse_threshold=0.3, verbose_feature_names_out=True)
    return FeaturePlan(transformer, encoding, categorical if encoding == "ordinal" else [])


def _derived_steps(features: FeaturesConfig, numeric: list[str], encoding: Encoding) -> list[tuple[str, Any, Any]]:
    """One pipeline step per ``features.derived`` entry, reading only numeric feature columns."""
    if not features.derived:
        return []
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from keel.domain.derived import DerivedColumn, expression_columns
    from keel.errors import ConfigError

    steps: list[tuple[str, Any, Any]] = []
    for name, expression in features.derived.items():
        inputs = expression_columns(name, expression)
        unknown = [c for c in inputs if c not in numeric]
        if unknown:
            raise ConfigError(
                f"`features.derived.{name}`: {', '.join(repr(c) for c in unknown)} are not numeric feature columns "
                f"(numeric features: {', '.join(numeric[:20])}{' …' if len(numeric) > 20 else ''})"
            )
        derived: Any = DerivedColumn(name, expression)
        if encoding == "onehot":
            derived = Pipeline(
                [("derive", derived), ("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
            )
        steps.append((f"derived_{name}", derived, inputs))
    return steps


def text_vectorizer(features: FeaturesConfig) -> Any:
    """TF-IDF over words and, when configured, characters, for one text column."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    text = features.text
    word = TfidfVectorizer(
        ngram_range=text.word_ngrams,
        max_features=text.max_features,
        min_df=text.min_df,
        sublinear_tf=True,
        strip_accents="unicode",
        lowercase=True,
    )
    if text.char_ngrams is None:
        return word
    char = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=text.char_ngrams,
        max_features=text.max_features,
        min_df=text.min_df,
        sublinear_tf=True,
        strip_accents="unicode",
        lowercase=True,
    )
    return FeatureUnion([("word", word), ("char", char)])


_ACCESSORS = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}
"""pandas' current names for the parts whose output names (kept, as stored models use them) it deprecated."""


class DatetimeParts:
    """Turn one date column into numeric parts: year, month, day, day of week, hour, day of year.

    A small scikit-learn style transformer (``fit`` / ``transform`` / ``get_feature_names_out``), kept here so
    that it is one of keel's own trusted types when a pipeline is loaded with skops.
    """

    PARTS = ("year", "month", "day", "dayofweek", "hour", "dayofyear")

    def fit(self, frame: pd.DataFrame, y: Any = None) -> DatetimeParts:
        """Remember the input column name."""
        self.columns_ = [str(c) for c in frame.columns]
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Numeric parts of each date (missing dates give missing parts)."""
        import numpy as np
        import pandas as pd

        values = pd.to_datetime(frame.iloc[:, 0], errors="coerce", format="mixed")
        parts = [getattr(values.dt, _ACCESSORS.get(part, part)).astype("float64").to_numpy() for part in self.PARTS]
        return np.column_stack(parts)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the parts, prefixed by the column name."""
        import numpy as np

        return np.asarray([f"{self.columns_[0]}_{part}" for part in self.PARTS], dtype=object)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """No parameters (scikit-learn protocol)."""
        return {}

    def set_params(self, **params: Any) -> DatetimeParts:
        """No parameters (scikit-learn protocol)."""
        return self


def output_names(transformer: ColumnTransformer) -> list[str]:
    """Readable names of a fitted transformer's output columns (``categorical__workclass`` → ``workclass``)."""
    names = []
    for raw in transformer.get_feature_names_out():
        _, _, rest = str(raw).partition("__")
        names.append(rest or str(raw))
    return names
