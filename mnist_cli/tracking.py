"""A run's record in TensorBoard (event files in the run folder, train.tensorboard) and, with --mlflow or
MLFLOW_TRACKING_URI set, in MLflow: both fed the records `on_event` receives (mnist_cli.record), plus the model itself
at the probes and epoch ends for the weight and gradient histograms and the first layer's image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mnist_cli.errors import MnistError, TrainingInterrupted
from mnist_cli.record import EpochMetrics, HealthRecord, StepRecord, TestRecord

MLFLOW_EXTRA = 'pip install "mnist-cli[mlflow]"'
EXPERIMENT = "mnist-cli"  # unless MLFLOW_EXPERIMENT_NAME names another
RUN_DIR_TAG = "mnist.run_dir"  # a resumed run continues the MLflow run of its folder
FINAL = ("val/accuracy", "val/loss", "test/accuracy", "test/loss")  # the HParams view's metric columns
HISTOGRAM_BINS = 64
# Entries counted per histogram, evenly strided, the counts scaled to the whole: below torch's parallel grain size, so
# taking the sample wakes no thread pool, and numpy's histogram of every entry of a 784x512 matrix costs far more.
HISTOGRAM_SAMPLE = 1 << 14
MAX_PENDING = 1000  # values held back (each histogram's sample up to 64 KB); the default's epoch holds ~170
IMAGE_TILES = 64  # first-layer units shown, 8 to a row


@dataclass(frozen=True)
class MlflowTarget:
    """Where a run logs in MLflow: the tracking URI, the experiment, and a sweep's parent run (plain, picklable)."""

    uri: str
    experiment_id: str
    parent_run_id: str | None = None


def mlflow_target(asked: bool) -> MlflowTarget | None:
    """The MLflow experiment to log to, with --mlflow or MLFLOW_TRACKING_URI set; None otherwise."""
    if not (asked or os.environ.get("MLFLOW_TRACKING_URI")):
        return None
    try:
        import mlflow
    except ImportError:
        why = "--mlflow" if asked else "MLFLOW_TRACKING_URI is set, which"
        raise MnistError(f"{why} needs the mlflow package: {MLFLOW_EXTRA}") from None
    client = mlflow.MlflowClient()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    found = client.get_experiment_by_name(name)
    return MlflowTarget(mlflow.get_tracking_uri(), found.experiment_id if found else client.create_experiment(name))


def flat_config(values, prefix: str = "") -> dict[str, Any]:
    """{'train.lr': 0.002, 'model.width': '[256, 128]', ...}: numbers, strings and booleans; lists and None as text."""
    out: dict[str, Any] = {}
    for k, v in (values if isinstance(values, dict) else values.model_dump(mode="json")).items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v if isinstance(v, (bool, int, float, str)) else str(v)
    return out


def scalars(record) -> list[tuple[str, float]]:
    """(tag, value) of one record, at its global step: the same names in TensorBoard and MLflow."""
    if isinstance(record, StepRecord):
        values = {"train/loss": record.loss, "train/lr": record.lr}
    elif isinstance(record, EpochMetrics):
        values = {
            "val/loss": record.val_loss,
            "val/accuracy": record.val_accuracy,
            "train/epoch_loss": record.train_loss,
            "train/accuracy": record.train_accuracy,
            "samples_per_second": record.samples_per_second,
        }
    elif isinstance(record, TestRecord):
        values = {"test/accuracy": record.accuracy, "test/loss": record.loss}
    else:  # HealthRecord: the layer-health numbers, one chart per measure with a line per layer
        names = ("grad_norm", "grad_ratio", "dead_fraction", "saturated_fraction")
        values = {f"health/{n}/{layer.name}": getattr(layer, n) for layer in record.layers for n in names}
    return [(tag, v) for tag, v in values.items() if v is not None]


class Tracker:
    """The `on_event` wrapper training calls: each record also goes to TensorBoard and MLflow.

    TensorBoard's values wait in `pending` until the epoch record (outside the epoch's clock) or the end; histograms
    are counted from a strided sample taken at the probe: a probe costs two small copies a layer.
    """

    def __init__(self, cfg, run_dir, model, resumed_at: int, mlflow: MlflowTarget | None, on_event):
        self.model, self.on_event, self.tb, self.ml = model, on_event, None, None
        self.pending: list[tuple[int, str, Any]] = []  # (global step, tag, a float or a histogram's sample)
        if cfg.train.tensorboard:
            # Imported here, before training's clock starts: the first epoch pays no import.
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams

            # A resumed run hides what its killed predecessor wrote past last.pt: no step shows twice.
            self.tb = SummaryWriter(str(run_dir.path), purge_step=resumed_at + 1 if resumed_at else None)
            self._hparams = hparams(flat_config(cfg), dict.fromkeys(FINAL, 0.0)) if not resumed_at else ()
            for summary in self._hparams[:2]:  # the experiment and the session's start; its end when it ends
                self.tb.file_writer.add_summary(summary)
        if mlflow is not None:
            self.ml = MlflowRun(mlflow, cfg, run_dir, model, resumed_at)

    def __call__(self, event) -> None:
        record = getattr(event, "record", event)  # StepDone carries the step's record
        if isinstance(record, (StepRecord, HealthRecord, EpochMetrics, TestRecord)):
            pairs = scalars(record)
            if self.tb is not None:
                self.pending += [(record.global_step, tag, value) for tag, value in pairs]
                if isinstance(record, HealthRecord):
                    self._sample_layers(record)
                    if len(self.pending) > MAX_PENDING:  # hundreds of probes an epoch: bounded memory
                        self._write()
                elif isinstance(record, EpochMetrics):
                    self._image(record.global_step)
                    self._write()
            if self.ml is not None:
                self.ml.log(pairs, record.global_step, flush=isinstance(record, (EpochMetrics, TestRecord)))
        self.on_event(event)

    def _sample_layers(self, probe: HealthRecord) -> None:
        """Each Linear's weights after the probe step, and its gradient (None when the step was skipped: a NaN)."""
        for health, layer in zip(probe.layers, self.model.linears(), strict=True):
            for kind, values in (("weights", layer.weight), ("gradients", layer.weight.grad)):
                if values is not None:
                    x = values.detach().float().flatten()
                    sample = x[:: max(1, x.numel() // HISTOGRAM_SAMPLE)].clone()
                    self.pending.append((probe.global_step, f"{kind}/{health.name}", (sample, x.numel())))

    def _image(self, step: int) -> None:
        """The first layer's weights, one tile per unit, 8 to a row: what each hidden unit looks for in the image."""
        import numpy as np

        weight = self.model.linears()[0].weight.detach()[:IMAGE_TILES].float().cpu().numpy()
        side = int(weight.shape[1] ** 0.5)
        if side < 4 or side * side != weight.shape[1]:  # 28x28 or 8x8 inputs, not the 2-input toys
            return
        lo, hi = weight.min(1, keepdims=True), weight.max(1, keepdims=True)
        rows = -(-len(weight) // 8)
        tiles = np.zeros((rows * 8, side * side), np.float32)
        tiles[: len(weight)] = (weight - lo) / np.maximum(hi - lo, 1e-12)  # each tile its own range, in [0, 1]
        grid = np.pad(tiles.reshape(rows, 8, side, side), ((0, 0), (0, 0), (1, 0), (1, 0)), constant_values=1)
        grid = grid.transpose(0, 2, 1, 3).reshape(rows * (side + 1), 8 * (side + 1))  # a white line around each tile
        self.pending.append((step, "first_layer_weights", np.pad(grid, ((0, 1), (0, 1)), constant_values=1)))

    def _write(self) -> None:
        """The pending values in step order, through SummaryWriter; then a flush (the run's commit points)."""
        import numpy as np

        for step, tag, value in sorted(self.pending, key=lambda p: p[0]):  # stable: a step's values keep their order
            if isinstance(value, tuple):
                self._histogram(tag, *value, step)
            elif isinstance(value, np.ndarray):
                self.tb.add_image(tag, value, step, dataformats="HW")
            else:
                self.tb.add_scalar(tag, value, step)
        self.pending = []
        self.tb.flush()

    def _histogram(self, tag: str, sample, n: int, step: int) -> None:
        """A histogram of `sample`, its counts scaled to all `n` entries. numpy, not torch: torch's histc and dot wake
        a thread pool, which costs milliseconds on a busy machine."""
        import numpy as np

        x = sample.cpu().double().numpy()
        counts, edges = np.histogram(x, HISTOGRAM_BINS)
        scale = n / len(x)
        sums = (x.sum() * scale, np.square(x).sum() * scale)
        self.tb.add_histogram_raw(tag, x.min(), x.max(), n, *sums, edges[1:].tolist(), (counts * scale).tolist(), step)

    def close(self, error: BaseException | None) -> None:
        """Flush and close; a finished run's TensorBoard session ends, and its MLflow run gets its files and status."""
        if self.tb is not None:
            self._write()
            if error is None and self._hparams:
                self.tb.file_writer.add_summary(self._hparams[2])
            self.tb.close()
        if self.ml is not None:
            self.ml.close(error)


class MlflowRun:
    """One training as an MLflow run, through the client API: params, tags, metrics in batches, files at the end."""

    def __init__(self, target: MlflowTarget, cfg, run_dir, model, resumed_at: int):
        from mlflow import MlflowClient
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        self.client, self.run_dir, self.pending = MlflowClient(target.uri), run_dir, []
        folder = str(run_dir.path.resolve())
        earlier = resumed_at and self.client.search_runs(
            [target.experiment_id], f"tags.`{RUN_DIR_TAG}` = '{folder}'", order_by=["attributes.start_time DESC"], max_results=1
        )
        if earlier:
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, "RUNNING")
            return
        sizes = [model.linears()[0].in_features, *(layer.out_features for layer in model.linears())]
        tags = {"dataset": cfg.data.dataset, "architecture": "-".join(map(str, sizes)), RUN_DIR_TAG: folder}
        if target.parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = target.parent_run_id
        run = self.client.create_run(target.experiment_id, run_name=str(run_dir.path), tags=tags)
        self.run_id = run.info.run_id
        # log_batch splits what passes the server's limits (100 params, 1,000 metrics a request) itself, since MLflow 2.0
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in flat_config(cfg).items()])

    def log(self, pairs: list[tuple[str, float]], step: int, flush: bool) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(tag, value, now, step) for tag, value in pairs]
        if flush:
            self.client.log_batch(self.run_id, metrics=self.pending)
            self.pending = []

    def close(self, error: BaseException | None) -> None:
        self.log([], 0, flush=True)
        if error is None:
            for path in (self.run_dir.config, self.run_dir.best):
                self.client.log_artifact(self.run_id, str(path))
        status = "FINISHED" if error is None else "KILLED" if isinstance(error, TrainingInterrupted) else "FAILED"
        self.client.set_terminated(self.run_id, status)


def start_sweep(target: MlflowTarget, out_dir, keys: list[str]) -> MlflowTarget:
    """A sweep's parent run; its trainings (in worker processes) log as runs nested under it."""
    from mlflow import MlflowClient

    client = MlflowClient(target.uri)
    run = client.create_run(target.experiment_id, run_name=str(out_dir), tags={"sweep.keys": ",".join(keys)})
    return MlflowTarget(target.uri, target.experiment_id, run.info.run_id)


def end_sweep(target: MlflowTarget, files: list[str], ok: bool) -> None:
    """The sweep's tables and figures on its parent run, and its status."""
    from mlflow import MlflowClient

    client = MlflowClient(target.uri)
    for path in files:
        if os.path.exists(path):
            client.log_artifact(target.parent_run_id, path)
    client.set_terminated(target.parent_run_id, "FINISHED" if ok else "KILLED")
