"""One record through a LightGBM booster at the cost of its trees: LightGBM's prepared single-row prediction.

``Booster.predict`` on one row spends most of its ~50 µs outside the trees: it builds a predictor object, copies
its parameters, converts the array for ctypes and parses a parameter string on every call. LightGBM's C API has a
single-row path prepared once (``LGBM_BoosterPredictForMatSingleRowFastInit``) that then takes a pointer to one row
and writes the prediction to a buffer, about 10 µs for the Adult model. It runs the same trees with the same
settings, so its answer is bit-for-bit ``Booster.predict``'s (tests compare them).
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities or values, as Booster.predict answers by default
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class SingleRow:
    """Scores one encoded row with a LightGBM booster, as ``booster.predict(row[None, :], num_threads=threads)``.

    Args:
        booster: The fitted ``lightgbm.Booster`` (kept alive as long as this object).
        threads: ``num_threads`` for the prediction.

    Raises:
        RuntimeError: LightGBM refused to prepare the single-row predictor (the caller keeps ``Booster.predict``).
    """

    def __init__(self, booster: Any, *, threads: int = 1) -> None:
        import numpy as np
        from lightgbm.libpath import _LIB  # the library lightgbm loaded

        self._booster = booster
        self._library = _LIB
        width = booster.num_feature()
        self._outputs = booster.num_model_per_iteration()  # classes of a multiclass model, else 1
        handle = ctypes.c_void_p()
        status = _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,  # the C API needs the booster's handle; there is no public accessor
            ctypes.c_int(_PREDICT_NORMAL),
            ctypes.c_int(0),  # start_iteration, as Booster.predict's default
            ctypes.c_int(booster.best_iteration),  # what Booster.predict uses when num_iteration is not given
            ctypes.c_int(_FLOAT64),
            ctypes.c_int32(width),
            ctypes.c_char_p(f"num_threads={threads}".encode()),
            ctypes.byref(handle),
        )
        if status != 0:
            raise RuntimeError(_LIB.LGBM_GetLastError().decode("utf-8", "replace"))
        self._handle = handle
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, handle)
        self._row = np.empty(width, dtype=np.float64)
        self._out = np.empty(self._outputs, dtype=np.float64)
        self._row_pointer = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out_pointer = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._length = ctypes.c_int64()
        self._length_pointer = ctypes.byref(self._length)
        self._lock = threading.Lock()  # the row and output buffers are shared; ctypes releases the GIL

    def predict(self, row: Any) -> np.ndarray:
        """What ``Booster.predict`` answers for ``row`` (one encoded row) as a matrix of one row.

        Shaped like ``Booster.predict``'s answer: ``(1,)`` for a binary classifier or a regressor, ``(1, classes)``
        for a multiclass model.
        """
        with self._lock:
            self._row[:] = row
            status = self._library.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle, self._row_pointer, self._length_pointer, self._out_pointer
            )
            if status != 0:
                raise RuntimeError(self._library.LGBM_GetLastError().decode("utf-8", "replace"))
            output = self._out.copy()
        return output if self._outputs == 1 else output.reshape(1, self._outputs)


def single_row(booster: Any, *, threads: int = 1) -> SingleRow | None:
    """A :class:`SingleRow` for ``booster``, or ``None`` when this LightGBM cannot prepare one."""
    try:
        return SingleRow(booster, threads=threads)
    except (AttributeError, RuntimeError):  # a LightGBM without the single-row API, or one that refused it
        return None
