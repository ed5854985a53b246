"""Made-With-ML project descriptions → the tagging table, with columns naming evaluation slices.

The model reads ``title`` and ``description`` only. The recipe adds two columns that are not features but let the
evaluation report metrics on the slices the Made-With-ML course looks at:

- ``text_length``: ``short`` when title and description together have fewer than :data:`SHORT_WORDS` words,
  else ``long``;
- ``mentions_framework``: ``yes`` when the text names a deep-learning framework (:data:`FRAMEWORKS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from keel.domain.recipes import RecipeResult
from keel.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

SHORT_WORDS = 12
FRAMEWORKS = ("pytorch", "tensorflow", "keras", "jax", "mxnet", "scikit-learn", "sklearn", "huggingface", "fastai")
_FRAMEWORK = re.compile(r"\b(?:" + "|".join(re.escape(f) for f in FRAMEWORKS) + r")\b", re.IGNORECASE)


def add_slices(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with ``text_length`` and ``mentions_framework`` added.

    Raises:
        DataError: ``title`` or ``description`` is missing.
    """
    missing = [c for c in ("title", "description") if c not in frame.columns]
    if missing:
        raise DataError(f"the tags recipe needs columns title and description; missing: {', '.join(missing)}")
    text = frame["title"].fillna("").astype(str) + " " + frame["description"].fillna("").astype(str)
    words = text.str.count(r"\S+")  # words: runs of non-space characters, as str.split() finds them
    return frame.assign(
        text_length=words.lt(SHORT_WORDS).map({True: "short", False: "long"}),
        mentions_framework=text.str.contains(_FRAMEWORK).map({True: "yes", False: "no"}),
    )


def project_tags(tables: Mapping[str, pd.DataFrame]) -> RecipeResult:
    """Add the slice columns to the training and test tables."""
    test = tables.get("test")
    return RecipeResult(train=add_slices(tables["train"]), test=None if test is None else add_slices(test))
