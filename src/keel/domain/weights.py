"""Sample weights (``data.weight``): reading a weight column and saying what is wrong with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def weight_problem(frame: pd.DataFrame, column: str, *, label: str) -> str | None:
    """What is wrong with a part's weight column, or ``None`` when every row holds a finite number ≥ 0.

    Args:
        frame: The part's rows.
        column: The weight column (``data.weight``).
        label: How to name the part in the message (e.g. ``training rows (census.csv)``).
    """
    import numpy as np
    import pandas as pd

    if column not in frame.columns:
        return f"{label}: the weight column {column!r} (data.weight) is missing"
    raw = frame[column]
    numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = raw.isna().to_numpy()
    text = ~missing & np.isnan(numbers)
    infinite = np.isinf(numbers)
    negative = numbers < 0
    counts = {
        "missing": int(missing.sum()),
        "not numbers": int(text.sum()),
        "infinite": int(infinite.sum()),
        "negative": int(negative.sum()),
    }
    bad = missing | text | infinite | negative
    if bad.any():
        found = ", ".join(f"{count:,} {what}" for what, count in counts.items() if count)
        examples = raw[text | infinite | negative].astype(str).unique()[:5].tolist()
        shown = f" (for example {examples})" if examples else ""
        return (
            f"{label}: the weight column {column!r} (data.weight) has {int(bad.sum()):,} of {len(raw):,} row(s) "
            f"that are not finite numbers >= 0: {found}{shown}"
        )
    if len(numbers) and not numbers.sum() > 0:
        return f"{label}: every weight in {column!r} (data.weight) is 0; at least one row must weigh something"
    return None


def read_weights(frame: pd.DataFrame, column: str, *, label: str) -> np.ndarray:
    """The weight column as float64, checked (see :func:`weight_problem`).

    Raises:
        DataError: The column is missing or holds a value that is not a finite number ≥ 0.
    """
    import numpy as np
    import pandas as pd

    problem = weight_problem(frame, column, label=label)
    if problem is not None:
        raise DataError(problem + WEIGHT_ADVICE)
    return pd.to_numeric(frame[column]).to_numpy(dtype=np.float64)


WEIGHT_ADVICE = "\nFix the weights (every row needs a finite number >= 0), or remove `data.weight`."
