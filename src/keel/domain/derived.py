"""Derived numeric features: small arithmetic expressions over numeric columns, computed inside the pipeline.

A derived feature (``features.derived`` in the config) is a step of the fitted feature pipeline, so training,
batch prediction and the service all compute it the same way from the raw columns. Expressions are parsed into a
tiny, closed grammar (numbers, column names, ``+ - * / **``, unary minus, ``abs``, ``sqrt``, ``log1p``) and
evaluated with numpy: nothing in an expression can call arbitrary code, which matters because the expression is
stored with the model version and evaluated again when it is loaded.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_FUNCTIONS = ("abs", "sqrt", "log1p")
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.USub, ast.UAdd, *_OPERATORS)


def expression_columns(name: str, expression: str) -> list[str]:
    """The column names an expression reads, in order of first use.

    Args:
        name: The derived feature's name (for messages).
        expression: The arithmetic expression.

    Returns:
        Column names.

    Raises:
        ConfigError: The expression is not valid in the grammar.
    """
    tree = _parse(name, expression)
    names = sorted(
        (node.col_offset, node.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id not in _FUNCTIONS
    )
    return list(dict.fromkeys(name for _, name in names))


def _parse(name: str, expression: str) -> ast.Expression:
    where = f"features.derived.{name}"
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"`{where}`: {expression!r} is not a valid expression ({exc.msg})") from None
    for node in ast.walk(tree):
        number = isinstance(node, ast.Constant) and type(node.value) in (int, float)
        allowed = isinstance(node, _NODES) or number
        if isinstance(node, ast.Call):
            allowed = (
                isinstance(node.func, ast.Name)
                and node.func.id in _FUNCTIONS
                and len(node.args) == 1
                and not node.keywords
            )
        if not allowed:
            raise ConfigError(
                f"`{where}`: {expression!r} uses {type(node).__name__}, which derived features do not allow; use "
                f"numbers, numeric column names, + - * / **, and {', '.join(_FUNCTIONS)}()"
            )
    return tree


def _evaluate(node: ast.AST, frame: pd.DataFrame) -> Any:
    import numpy as np

    if isinstance(node, ast.Expression):
        return _evaluate(node.body, frame)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, int | float):  # _parse refuses other constants; checked for the type too
            raise ConfigError(f"{node.value!r} is not a number")
        return float(node.value)
    if isinstance(node, ast.Name):
        return frame[node.id].to_numpy(dtype=np.float64)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, frame)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = {"abs": np.abs, "sqrt": np.sqrt, "log1p": np.log1p}[node.func.id]
        return function(_evaluate(node.args[0], frame))
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, frame), _evaluate(node.right, frame)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
        return left**right
    raise ValueError(f"unsupported expression node {type(node).__name__}")  # unreachable after _parse


class DerivedColumn:
    """One derived numeric feature, a scikit-learn style transformer used inside the ``ColumnTransformer``.

    Kept as one of keel's own trusted types, so a pipeline holding it loads with skops without pickle.

    Args:
        name: Output column name.
        expression: Arithmetic over the input columns (see the module docstring).
    """

    def __init__(self, name: str = "", expression: str = "") -> None:
        self.name = name
        self.expression = expression

    def fit(self, frame: pd.DataFrame, y: Any = None) -> DerivedColumn:
        """Check the expression against the input columns.

        Raises:
            ConfigError: The expression is invalid or names a column that is not an input.
        """
        self.columns_ = [str(c) for c in frame.columns]
        missing = [c for c in expression_columns(self.name, self.expression) if c not in self.columns_]
        if missing:
            raise ConfigError(
                f"`features.derived.{self.name}`: column(s) {', '.join(missing)} are not numeric feature columns"
            )
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The derived values, one column (missing or invalid inputs give NaN, never an error)."""
        import numpy as np

        with np.errstate(all="ignore"):
            values = np.asarray(_evaluate(_parse(self.name, self.expression), frame), dtype=np.float64)
        values = np.broadcast_to(values, (len(frame),)).copy()
        values[~np.isfinite(values)] = np.nan
        return values.reshape(-1, 1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The single output name."""
        import numpy as np

        return np.asarray([self.name], dtype=object)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters (scikit-learn protocol)."""
        return {"name": self.name, "expression": self.expression}

    def set_params(self, **params: Any) -> DerivedColumn:
        """Set parameters (scikit-learn protocol)."""
        for key, value in params.items():
            setattr(self, key, value)
        return self


class JoinedText:
    """Join several text columns into one document per row (missing parts are skipped).

    Used before one TF-IDF vectorizer when ``features.text.join`` is set; a keel type trusted by the skops loader.
    """

    def fit(self, frame: pd.DataFrame, y: Any = None) -> JoinedText:
        """Remember the input columns."""
        self.columns_ = [str(c) for c in frame.columns]
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """One string per row: the columns' texts joined by a space."""
        import numpy as np

        parts = frame.astype("string").fillna("")
        joined = parts.iloc[:, 0]
        for i in range(1, parts.shape[1]):
            joined = joined + " " + parts.iloc[:, i]
        return np.asarray(joined.str.strip(), dtype=object)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The single output name (the joined column names)."""
        import numpy as np

        return np.asarray(["+".join(getattr(self, "columns_", []))], dtype=object)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """No parameters (scikit-learn protocol)."""
        return {}

    def set_params(self, **params: Any) -> JoinedText:
        """No parameters (scikit-learn protocol)."""
        return self
