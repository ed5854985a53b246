"""Second processes for the main job's MLflow and matplotlib work: the sidecars.

Of ``keel train``'s own time on Adult, importing MLflow's client took about 1.6 s, its SQL store 1.0 s, and the
plots 1.3 s with matplotlib's import; the fit needs none of them. ``keel train`` starts two sidecars, Python
processes of the job's own. The first imports MLflow's client while the main process reads and validates the data,
and after the fit it opens the store, writes the MLflow model files and logs the run. The second is started when
the fit ends and draws the plots. Meanwhile the main process evaluates the model and computes the drift reference
and the contributions. Imported and drawn one after the other, the store and the plots took longer after the fit
than the main process's own work, so they are split between two processes that run beside it. The client's
import is finished before the fit starts (the main process waits for it), so no import competes with the fit's
threads.

The main process sends requests as JSON lines on the sidecar's stdin and reads the answers on its stdout, in order.
A request does not wait for its answer unless the caller asks for its result (:meth:`Pending.result`), and a
request may name an earlier one's result as an argument (the run id, before it is known). Arrays travel in
``.npy`` files read with ``allow_pickle=False``: nothing is pickled. A failed request's error is raised at the next
result the main process asks for, so no error is lost. The sidecar decides nothing: the promotion lock, the gate
and the checks of what the store holds stay in the main process.

The sidecar ignores Ctrl-C (the main process ends the run as KILLED through it) and ends when its stdin closes,
marking a run still open FAILED: a main process killed outright leaves no run RUNNING.

A process that has MLflow loaded already (a notebook, the test suite) or runs on one core would gain nothing; the
same operations then run in-process (:class:`InlineSidecar`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel import errors
from keel.errors import KeelError
from keel.io.registry import ending_run

if TYPE_CHECKING:
    from keel.domain.refs import ModelRef
    from keel.io.registry import Registry, VersionInfo

_REF = "$ref"
_IMPORTS_ONLY = frozenset({"warm", "warm_plots", "ping"})
"""Requests that change nothing: a sidecar with only these unanswered may be ended at once."""


class SidecarError(RuntimeError):
    """The sidecar failed on something that is not the user's to fix (a bug or a lost process)."""


class Pending:
    """A request sent to the sidecar; :meth:`result` waits for its answer."""

    def __init__(self, side: Sidecar, number: int) -> None:
        self._side = side
        self.number = number

    def result(self) -> Any:
        """The request's result, once it (and every request before it) has been carried out.

        Raises:
            KeelError: The request, or an earlier one whose error was not raised yet, failed on the user's input.
            SidecarError: It failed otherwise (the sidecar's traceback is in the message).
        """
        return self._side.result(self.number)


class Sidecar:
    """The operations of the main job that need MLflow or matplotlib, carried out in order (one sidecar each)."""

    def __init__(self) -> None:
        self._sent = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._raised: set[int] = set()

    def call(self, operation: str, **arguments: Any) -> Pending:
        """Send one request (see :class:`Operations` for the names and arguments) without waiting."""
        self._sent += 1
        self._send(self._sent, operation, arguments)
        return Pending(self, self._sent)

    def result(self, number: int) -> Any:
        """Request ``number``'s result; first raises any error of an earlier request that was not raised yet."""
        while number not in self._answers:
            self._receive()
        for earlier in sorted(self._answers):
            if earlier >= number:
                break
            failure = self._answers[earlier].get("error")
            if failure is not None and earlier not in self._raised:
                self._raised.add(earlier)
                raise _error(failure)
        failure = self._answers[number].get("error")
        if failure is not None:
            self._raised.add(number)
            raise _error(failure)
        return self._answers[number].get("result")

    def wait(self) -> None:
        """Wait until every request sent so far is carried out; raise the first error not raised yet."""
        self.call("ping").result()

    @contextlib.contextmanager
    def run(self, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> Iterator[Pending]:
        """An MLflow run that ends FINISHED, FAILED or KILLED (Ctrl-C) as the block does; yields its pending id."""
        run_id = self.call("start_run", experiment=experiment, run_name=run_name, tags=tags or {})
        with ending_run(lambda status: self.call("end_run", run_id=run_id, status=status).result()):
            yield run_id

    def close(self) -> None:
        """End the sidecar (its open runs end FAILED)."""

    def _send(self, number: int, operation: str, arguments: dict[str, Any]) -> None:
        raise NotImplementedError

    def _receive(self) -> None:
        raise NotImplementedError


class InlineSidecar(Sidecar):
    """The sidecar's operations carried out at once in this process (a process with MLflow loaded, one core)."""

    def __init__(self, operations: Operations | None = None) -> None:
        super().__init__()
        self.operations = operations or Operations()

    def _send(self, number: int, operation: str, arguments: dict[str, Any]) -> None:
        # Through JSON as in the sidecar process, so the two behave alike.
        arguments = json.loads(json.dumps(arguments, default=_encode))
        self._answers[number] = self.operations.answer(number, operation, arguments)

    def _receive(self) -> None:  # pragma: no cover - every answer is there as soon as its request is sent
        raise SidecarError("no request is waiting for an answer")

    def close(self) -> None:
        """End the runs still open as FAILED."""
        self.operations.abandon()


class ProcessSidecar(Sidecar):
    """The sidecar as a second Python process (``python -m keel.io.sidecar``)."""

    def __init__(self) -> None:
        import queue
        import threading

        super().__init__()
        self._operations: dict[int, str] = {}
        # -P: the working folder is not put on the module path, so only the installed keel runs.
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-m", "keel.io.sidecar"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        # Requests are written by a thread: a large one (ROC curves) must not hold up this process while the
        # sidecar is busy and its pipe is full.
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_requests, name="keel-sidecar-writer", daemon=True)
        self._writer.start()

    def _send(self, number: int, operation: str, arguments: dict[str, Any]) -> None:
        self._operations[number] = operation
        self._outbox.put(json.dumps({"id": number, "op": operation, "args": arguments}, default=_encode) + "\n")

    def _write_requests(self) -> None:
        stream = self._process.stdin
        assert stream is not None  # noqa: S101 - opened with a pipe
        while (line := self._outbox.get()) is not None:
            try:
                stream.write(line)
                stream.flush()
            except OSError:  # the sidecar is gone: reading its answers says so
                return

    def _receive(self) -> None:
        stream = self._process.stdout
        assert stream is not None  # noqa: S101 - opened with a pipe
        line = stream.readline()
        if not line:
            raise self._lost()
        answer = json.loads(line)
        self._answers[int(answer["id"])] = answer

    def _lost(self) -> SidecarError:
        code = self._process.wait()
        return SidecarError(f"keel's sidecar process (MLflow and plots) ended unexpectedly with exit code {code}")

    def close(self) -> None:
        """End the sidecar.

        At once when every request that changes something is answered; otherwise once it has carried them out
        (its open runs then end FAILED).
        """
        if all(number in self._answers for number, name in self._operations.items() if name not in _IMPORTS_ONLY):
            self._process.kill()  # nothing left to do but imports: no teardown to wait for
        self._outbox.put(None)
        self._writer.join(timeout=30)
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - it ends as soon as its stdin closes
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def start_sidecar() -> Sidecar:
    """A sidecar process, or the operations in-process where a second process would gain nothing.

    In-process when MLflow is imported already (a notebook, the test suite) or only one core is usable.
    """
    if "mlflow" in sys.modules or usable_cores() < 2 or not sys.executable:
        return InlineSidecar()
    return ProcessSidecar()


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def sidecar(warm: str = "warm") -> Iterator[Sidecar]:
    """:func:`start_sidecar`, already carrying out ``warm``; closed when the block ends.

    ``warm`` imports MLflow's client (the sidecar of the registry); ``warm_plots`` imports matplotlib (the painter).
    """
    side = start_sidecar()
    try:
        side.call(warm)
        yield side
    finally:
        side.close()


class SideRegistry:
    """The registry reads the main process needs during training (the champion), answered by the sidecar.

    Args:
        side: The sidecar; its store is opened by an ``open`` request before these are asked.
        workspace: The registry's workspace folder.
    """

    def __init__(self, side: Sidecar, workspace: Path) -> None:
        self.side = side
        self.workspace = workspace

    def exists(self) -> bool:
        """Whether the store exists."""
        return bool(self.side.call("exists").result())

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or ``None``."""
        found = self.side.call("alias_version", name=name, alias=alias).result()
        return None if found is None else int(found)

    def get(self, ref: ModelRef) -> VersionInfo:
        """The version a reference names."""
        from keel.io.registry import VersionInfo

        return VersionInfo(**self.side.call("get", name=ref.name, version=ref.version, alias=ref.alias).result())

    def local_directory(self, info: VersionInfo) -> Path:
        """A local folder with the version's files."""
        return Path(self.side.call("local_directory", info=asdict(info)).result())


def champion_of(pending: Pending) -> tuple[VersionInfo, Path] | None:
    """The answer of a ``champion`` request (see :func:`keel.io.registry.find_champion`)."""
    from keel.io.registry import VersionInfo

    found = pending.result()
    return None if found is None else (VersionInfo(**found["info"]), Path(found["directory"]))


# -- the sidecar's side ---------------------------------------------------------------------------------------------


class Operations:
    """What the sidecar does, by name: each ``op_<name>`` takes and returns JSON values."""

    def __init__(self) -> None:
        self.registry: Registry | None = None
        self.open_runs: set[str] = set()
        self._results: dict[int, Any] = {}
        self._failed: set[int] = set()

    def answer(self, number: int, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Carry out one request; the answer holds its result or its error."""
        try:
            method: Callable[..., Any] | None = getattr(self, f"op_{operation}", None)
            if method is None:
                raise SidecarError(f"the sidecar has no operation {operation!r}")
            value = method(**{key: self._resolve(item) for key, item in arguments.items()})
        except Exception as exc:  # noqa: BLE001 - every failure is sent back to be raised in the main process
            self._failed.add(number)
            return {"id": number, "error": _describe(exc)}
        self._results[number] = value
        return {"id": number, "result": value}

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {_REF}:
            number = int(value[_REF])
            if number in self._failed:
                raise SidecarError(f"request {number}, which this one needs, failed")
            return self._results[number]
        return value

    def abandon(self) -> None:
        """End the runs still open as FAILED (the main process is gone or gave up)."""
        for run_id in sorted(self.open_runs):
            with contextlib.suppress(Exception):
                self._registry().end_run(run_id, "FAILED")
        self.open_runs.clear()

    def _registry(self) -> Registry:
        if self.registry is None:
            raise SidecarError("the sidecar's registry was used before an `open` request")
        return self.registry

    # -- set-up

    def op_ping(self) -> None:
        """Nothing: its answer says every earlier request is carried out."""

    def op_warm(self) -> None:
        """Import MLflow's client and model files while the main process reads and validates the data.

        Then SQLAlchemy's ORM, a fifth of the SQL store's import, which fits in the time the main process still needs
        before the fit on Adult. The rest of the store and matplotlib are imported after the fit by the first request
        that needs them: imported here, they held up the fit longer than they hold up the work after it.
        """
        import mlflow.models  # noqa: F401
        import sqlalchemy.orm  # noqa: F401
        from mlflow import MlflowClient  # noqa: F401

    def op_warm_plots(self) -> None:
        """Import matplotlib (in the sidecar that draws the plots) while the main process evaluates the model."""
        from keel.io import plots

        plots.pyplot()

    def op_open(self, workspace: str, tracking_uri: str) -> None:
        """Open the registry (a new workspace's store is created)."""
        from keel.io.registry import Registry

        self.registry = Registry(Path(workspace), tracking_uri)
        _ = self.registry.client  # creates (seeds) a new workspace's store

    # -- runs and versions (see keel.io.registry.Registry)

    def op_start_run(self, experiment: str, run_name: str, tags: dict[str, str]) -> str:
        """Start a run; see :meth:`keel.io.registry.Registry.start_run`."""
        run_id = self._registry().start_run(experiment, run_name, tags)
        self.open_runs.add(run_id)
        return run_id

    def op_end_run(self, run_id: str, status: str) -> None:
        """End a run as ``FINISHED``, ``FAILED`` or ``KILLED``."""
        self._registry().end_run(run_id, status)
        self.open_runs.discard(run_id)

    def op_log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log the run's parameters."""
        self._registry().log_params(run_id, params)

    def op_log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Log the run's metrics."""
        self._registry().log_metrics(run_id, metrics)

    def op_log_datasets(self, run_id: str, datasets: list[dict[str, Any]]) -> None:
        """Log the run's datasets (:class:`keel.io.registry.DatasetRecord` fields)."""
        from keel.io.registry import DatasetRecord

        self._registry().log_datasets(run_id, [DatasetRecord(**record) for record in datasets])

    def op_log_model_directory(self, run_id: str, directory: str) -> str:
        """Log a model directory as the run's artifacts; returns their URI."""
        return self._registry().log_model_directory(run_id, Path(directory))

    def op_register(self, name: str, source: str, run_id: str, description: str, tags: dict[str, str]) -> int:
        """Create a version in state ``registering``; returns its number."""
        return self._registry().register(name, source, run_id, description=description, tags=tags)

    def op_mark_complete(self, name: str, version: int, manifest_sha256: str, tags: dict[str, str]) -> None:
        """Tag a version complete, with its manifest's sha256."""
        self._registry().mark_complete(name, version, manifest_sha256, tags)

    def op_set_alias(self, name: str, alias: str, version: int) -> None:
        """Point an alias at a version."""
        self._registry().set_alias(name, alias, version)

    def op_champion(self, name: str, alias: str) -> dict[str, Any] | None:
        """The version an alias points at and a local folder with its files (see :func:`find_champion`)."""
        from keel.io.registry import find_champion

        found = find_champion(self._registry(), name, alias)
        return None if found is None else {"info": asdict(found[0]), "directory": str(found[1])}

    def op_exists(self) -> bool:
        """Whether the store exists."""
        return self._registry().exists()

    def op_alias_version(self, name: str, alias: str) -> int | None:
        """The version an alias points at, or ``None``."""
        return self._registry().alias_version(name, alias)

    def op_get(self, name: str, version: int | None, alias: str | None) -> dict[str, Any]:
        """The version a reference names (:class:`keel.io.registry.VersionInfo` fields)."""
        from keel.domain.refs import ModelRef

        return asdict(self._registry().get(ModelRef(name=name, version=version, alias=alias)))

    def op_local_directory(self, info: dict[str, Any]) -> str:
        """A local folder with the version's files."""
        from keel.io.registry import VersionInfo

        return str(self._registry().local_directory(VersionInfo(**info)))

    # -- files of the version

    def op_write_mlmodel(self, directory: str, spec: dict[str, Any], packages: dict[str, str]) -> None:
        """Write ``MLmodel`` and its files (see :func:`keel.io.mlmodel.write_files`)."""
        from keel.io import mlmodel

        mlmodel.write_files(Path(directory), spec, packages)

    def op_evaluation_plots(
        self, folder: str, figures: dict[str, Any], arrays: dict[str, str], importance: dict[str, float] | None
    ) -> None:
        """Draw the test evaluation's plots (see :func:`keel.io.plots.evaluation_plots`).

        ``arrays`` names ``.npy`` files holding the figures' large arrays (``residuals.predicted`` and the like).
        """
        import numpy as np

        from keel.io import plots

        for dotted, path in arrays.items():
            section, name = dotted.split(".", 1)
            figures.setdefault(section, {})[name] = np.load(path, allow_pickle=False)
        plots.evaluation_plots(Path(folder), figures, importance)

    def op_contributions_plot(self, values: dict[str, float], path: str) -> None:
        """Draw the global contributions' bars."""
        from keel.io import reports

        reports.contributions_plot(values, Path(path))


def save_arrays(folder: Path, **arrays: Any) -> dict[str, str]:
    """Write arrays as ``.npy`` files in ``folder`` for a request; returns their paths by name."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, array in arrays.items():
        if array is not None:
            path = folder / f"{name}.npy"
            np.save(path, np.asarray(array), allow_pickle=False)
            paths[name] = str(path)
    return paths


def _encode(value: Any) -> Any:
    if isinstance(value, Pending):
        return {_REF: value.number}
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)
    if callable(item):  # a numpy scalar
        return item()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"the sidecar cannot be sent a {type(value).__name__}")


def _describe(exc: BaseException) -> dict[str, Any]:
    keel = isinstance(exc, KeelError) and getattr(errors, type(exc).__name__, None) is type(exc)
    return {
        "type": type(exc).__name__,
        "keel": keel,
        "message": str(exc),
        "traceback": "" if keel else "".join(traceback.format_exception(exc)),
    }


def _error(failure: dict[str, Any]) -> Exception:
    if failure.get("keel"):
        kind = getattr(errors, str(failure["type"]), KeelError)
        return kind(failure["message"])
    return SidecarError(f"{failure['type']} in keel's sidecar: {failure['message']}\n{failure.get('traceback', '')}")


def main() -> None:
    """Serve requests from stdin until it closes (``python -m keel.io.sidecar``)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    # Answers go to the original stdout; anything a library prints goes to stderr instead of into the answers.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    operations = Operations()
    for line in sys.stdin:
        request = json.loads(line)
        answer = operations.answer(int(request["id"]), str(request["op"]), dict(request["args"]))
        answers.write(json.dumps(answer, default=_encode) + "\n")
        answers.flush()
    operations.abandon()
    answers.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown (freeing MLflow's modules one by one): nothing is left to write.
    os._exit(0)


if __name__ == "__main__":
    main()
