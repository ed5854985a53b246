"""A text pipeline's vocabularies and idf weights, stored once as compact arrays instead of inside skops.

skops writes a fitted ``TfidfVectorizer``'s ``vocabulary_`` (a dict of up to ``max_features`` terms per n-gram
kind) as one archive member per entry and lists them all in its own schema: for two 50,000-term vocabularies that
made a 128 MB archive of 100,011 members, minutes to write and seconds to load. Here each vectorizer's terms (in
column order, as UTF-8 bytes with their lengths) and idf weights are arrays in one compressed ``.npz`` file, read
with ``allow_pickle=False``; the pipeline goes to skops without them and gets them back on load.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keel.errors import IntegrityError

VOCABULARY_FILE = "vocabularies.npz"


def text_vectorizers(preprocessor: Any) -> list[Any]:
    """The fitted TF-IDF vectorizers inside a fitted ``ColumnTransformer``, in a fixed order (depth first)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, TfidfVectorizer):
            found.append(node)
            return
        for attribute in ("transformers_", "steps", "transformer_list"):
            for entry in getattr(node, attribute, None) or []:
                visit(entry[1])

    visit(preprocessor)
    return found


@contextlib.contextmanager
def vocabularies_removed(preprocessor: Any) -> Iterator[dict[str, Any]]:
    """Take the vectorizers' vocabularies and idf weights out of ``preprocessor`` for the block (put back after).

    Yields:
        The arrays to store (empty when the pipeline has no fitted vectorizer).
    """
    import numpy as np

    vectorizers = [v for v in text_vectorizers(preprocessor) if hasattr(v, "vocabulary_")]
    arrays: dict[str, Any] = {}
    kept: list[tuple[Any, dict[str, int], Any]] = []
    for index, vectorizer in enumerate(vectorizers):
        vocabulary: dict[str, int] = vectorizer.vocabulary_
        terms = sorted(vocabulary, key=vocabulary.__getitem__)
        if [vocabulary[t] for t in terms] != list(range(len(terms))):
            raise ValueError(f"text vectorizer {index}: its vocabulary does not number the columns 0..{len(terms) - 1}")
        encoded = [t.encode("utf-8") for t in terms]
        arrays[f"lengths_{index}"] = np.fromiter((len(b) for b in encoded), dtype=np.int32, count=len(encoded))
        arrays[f"terms_{index}"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        idf = getattr(vectorizer._tfidf, "idf_", None)
        if idf is not None:
            arrays[f"idf_{index}"] = np.asarray(idf, dtype=np.float64)
        kept.append((vectorizer, vocabulary, idf))
    try:
        for vectorizer, _, idf in kept:
            del vectorizer.vocabulary_
            if idf is not None:
                del vectorizer._tfidf.idf_
        yield arrays
    finally:
        for vectorizer, vocabulary, idf in kept:
            vectorizer.vocabulary_ = vocabulary
            if idf is not None:
                vectorizer._tfidf.idf_ = idf


def write_vocabularies(path: Path, arrays: dict[str, Any]) -> None:
    """Write the arrays to a compressed ``.npz`` atomically (temporary file, then rename)."""
    import numpy as np

    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez_compressed(out, **arrays)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def restore_vocabularies(preprocessor: Any, path: Path) -> None:
    """Put the stored vocabularies and idf weights back into a pipeline loaded without them.

    Raises:
        IntegrityError: The file is not such an archive, or does not fit the pipeline's vectorizers.
    """
    import numpy as np

    vectorizers = text_vectorizers(preprocessor)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in zipfile, zlib or numpy, each its own way
        raise IntegrityError(f"{path}: not a readable vocabulary archive ({type(exc).__name__}: {exc})") from None
    if sum(key.startswith("terms_") for key in arrays) != len(vectorizers):
        raise IntegrityError(
            f"{path}: holds {sum(k.startswith('terms_') for k in arrays)} vocabularies but the pipeline has "
            f"{len(vectorizers)} text vectorizers"
        )
    for index, vectorizer in enumerate(vectorizers):
        try:
            lengths, data = arrays[f"lengths_{index}"], arrays[f"terms_{index}"].tobytes()
            ends = np.cumsum(lengths, dtype=np.int64)
            if len(ends) and ends[-1] != len(data):
                raise ValueError("term lengths do not add up to the stored text")
            starts = ends - lengths
            terms = [data[s:e].decode("utf-8") for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
            idf = arrays.get(f"idf_{index}")
            if idf is not None and len(idf) != len(terms):
                raise ValueError(f"{len(idf)} idf weights for {len(terms)} terms")
        except (KeyError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise IntegrityError(f"{path}: vocabulary {index} is damaged ({exc})") from None
        vectorizer.vocabulary_ = {term: column for column, term in enumerate(terms)}
        if idf is not None:
            vectorizer.idf_ = idf
