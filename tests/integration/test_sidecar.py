"""The sidecar (MLflow and plots in a second process) on a real MLflow store: in order, errors kept, none left open."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from keel.errors import RegistryError
from keel.io.registry import Registry
from keel.io.sidecar import InlineSidecar, ProcessSidecar, Sidecar, SidecarError, champion_of, save_arrays


@pytest.fixture(scope="module")
def shared_process() -> Iterator[ProcessSidecar]:
    started = ProcessSidecar()  # one for the module: each test opens its own workspace's store in it
    started.call("warm")
    yield started
    started.close()


@pytest.fixture(params=["process", "inline"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sidecar]:
    started: Sidecar = request.getfixturevalue("shared_process") if request.param == "process" else InlineSidecar()
    workspace = tmp_path / "ws"
    started.call("open", workspace=workspace, tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}").result()
    yield started
    if request.param == "inline":
        started.close()


def _registry(tmp_path: Path) -> Registry:
    return Registry.open(tmp_path / "ws")


def test_a_run_and_a_version_are_logged_in_order_without_waiting_for_each_answer(side: Sidecar, tmp_path: Path) -> None:
    with side.run("exp", run_name="train-m", tags={"keel.job": "train"}) as run_id:
        # Sent before the run id is known: the sidecar uses the answer of the request that started the run.
        side.call("log_params", run_id=run_id, params={"model.estimator": "lightgbm", "n": 3})
        side.call("log_metrics", run_id=run_id, metrics={"roc_auc": np.float64(0.91), "nan": float("nan")})
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
        source = side.call("log_model_directory", run_id=run_id, directory=folder)
        version = side.call(
            "register", name="m", source=source, run_id=run_id, description="first", tags={"keel.task": "binary"}
        )
        assert version.result() == 1
        side.call("mark_complete", name="m", version=1, manifest_sha256="abc", tags={"keel.promoted": "true"})
        side.call("set_alias", name="m", alias="champion", version=1)
    registry = _registry(tmp_path)
    run = str(run_id.result())
    assert registry.run_metrics(run) == {"roc_auc": 0.91}
    stored = registry.client.get_run(run)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"model.estimator": "lightgbm", "n": "3"}
    info = registry.versions("m")[0]
    assert info.complete
    assert info.aliases == ["champion"]
    assert info.manifest_sha256 == "abc"
    assert info.tags["keel.task"] == "binary"
    assert info.tags["keel.promoted"] == "true"
    assert info.description == "first"
    found = champion_of(side.call("champion", name="m", alias="champion"))
    assert found is not None
    assert found[0].version == 1
    assert (found[1] / "manifest.json").read_text() == "{}"


def test_an_error_is_raised_by_the_next_result_asked_for_with_its_own_type(side: Sidecar) -> None:
    missing = side.call("get", name="nothing", version=None, alias=None)
    later = side.call("exists")
    with pytest.raises(RegistryError, match="no registered model named 'nothing'"):
        later.result()  # the earlier failure comes first, so it is not lost
    assert later.result() is True
    with pytest.raises(RegistryError):
        missing.result()
    # A request that needs a failed one's answer fails too, saying so.
    with pytest.raises(SidecarError, match=f"request {missing.number}, which this one needs, failed"):
        side.call("log_params", run_id=missing, params={}).result()


def test_a_bug_in_the_sidecar_keeps_its_traceback(side: Sidecar) -> None:
    with pytest.raises(SidecarError, match=r"(?s)TypeError in keel's sidecar.*alias.*Traceback"):
        side.call("set_alias", name="m", version=1).result()  # an argument missing: a bug, not the user's
    with pytest.raises(SidecarError, match="no operation 'shutdown'"):
        side.call("shutdown").result()


def test_no_champion_and_no_model_are_answered_as_none(side: Sidecar) -> None:
    assert champion_of(side.call("champion", name="m", alias="champion")) is None
    assert side.call("alias_version", name="m", alias="champion").result() is None


def test_plots_are_drawn_from_arrays_in_files_never_pickled(side: Sidecar, tmp_path: Path) -> None:
    from keel.io import plots

    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    figures = plots.evaluation_figures("regression", [], y_true=values + rng.normal(size=500), values=values)
    arrays = save_arrays(tmp_path / "arrays", **{f"residuals.{k}": v for k, v in figures.pop("residuals").items()})
    side.call(
        "evaluation_plots", folder=tmp_path / "plots", figures=figures, arrays=arrays, importance={"a": 2.0, "b": 1.0}
    )
    side.call("contributions_plot", values={"a": 0.5}, path=tmp_path / "plots" / "contributions.png")
    side.wait()
    drawn = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert drawn == ["contributions.png", "feature_importance.png", "residuals.png"]
    assert all((tmp_path / "plots" / name).read_bytes().startswith(b"\x89PNG") for name in drawn)
    # An object array would need pickle to load: the sidecar refuses it.
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    arrays = {"residuals.predicted": str(tmp_path / "objects.npy")}
    with pytest.raises(SidecarError, match="allow_pickle"):
        side.call("evaluation_plots", folder=tmp_path / "other", figures={}, arrays=arrays, importance=None).result()


def test_a_main_process_that_dies_leaves_no_run_running(tmp_path: Path) -> None:
    side = ProcessSidecar()
    workspace = tmp_path / "ws"
    side.call("open", workspace=workspace, tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    run_id = side.call("start_run", experiment="exp", run_name="r", tags={})
    run = str(run_id.result())
    process = side._process  # the test plays the main process killed outright: its pipe just closes
    process.send_signal(signal.SIGINT)  # Ctrl-C is the main process's: the sidecar carries on
    assert side.call("ping").result() is None
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    assert _registry(tmp_path).client.get_run(run).info.status == "FAILED"


def test_a_finished_sidecar_ends_at_once_and_a_lost_one_is_reported(tmp_path: Path) -> None:
    side = ProcessSidecar()
    side.call("warm")  # imports only: closing does not wait for them
    side.close()
    assert side._process.poll() is not None
    lost = ProcessSidecar()
    lost._process.kill()
    with pytest.raises(SidecarError, match="ended unexpectedly"):
        lost.call("ping").result()
    lost.close()


def test_the_painter_draws_without_a_store_and_a_warmed_one_ends_at_once(tmp_path: Path) -> None:
    """`keel train`'s second sidecar only imports matplotlib and draws: it never opens the registry."""
    painter = ProcessSidecar()
    painter.call("warm_plots")
    painter.close()  # imports only: closing does not wait for them
    assert painter._process.poll() is not None
    painter = ProcessSidecar()
    painter.call("warm_plots")
    drawn = painter.call("contributions_plot", values={"a": 0.5, "b": 0.25}, path=tmp_path / "plots" / "c.png")
    drawn.result()
    painter.close()
    assert (tmp_path / "plots" / "c.png").read_bytes().startswith(b"\x89PNG")
    assert [path.name for path in tmp_path.rglob("*")] == ["plots", "c.png"]  # no store, nothing else


def test_requests_and_answers_are_json_lines(tmp_path: Path) -> None:
    import subprocess
    import sys

    request = {"id": 1, "op": "ping", "args": {}}
    finished = subprocess.run(
        [sys.executable, "-m", "keel.io.sidecar"], input=json.dumps(request) + "\n", capture_output=True, text=True
    )
    assert finished.returncode == 0
    assert [json.loads(line) for line in finished.stdout.splitlines()] == [{"id": 1, "result": None}]
