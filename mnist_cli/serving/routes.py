"""The page (GET /) and the JSON API: /api/predict, /api/model, /healthz, with what they return as typed models
(FastAPI validates them and describes them at /openapi.json)."""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse
from PIL import Image
from pydantic import BaseModel, Field

from mnist_cli.errors import ImageError, MnistError
from mnist_cli.inference.discover import image_model
from mnist_cli.inference.image_files import decode
from mnist_cli.inference.predict import create_new, predict_bytes
from mnist_cli.inference.trained import TrainedModel
from mnist_cli.serving.playground import folder


class TopClass(BaseModel):
    class_: int = Field(alias="class", serialization_alias="class")
    label: str
    probability: float


class PredictResponse(BaseModel):
    """`mnist predict --json`'s entry for one image, plus every class's probability and the input the network saw."""

    path: str = Field(description="The uploaded file's name.")
    prediction: int = Field(description="Class index; for MNIST, the digit.")
    label: str
    probability: float
    top_k: list[TopClass] = Field(description="The most likely classes, most likely first.")
    uncertain: bool = Field(description="probability below the server's --min-confidence.")
    probabilities: list[float] = Field(description="Every class's probability, in class order.")
    input: str = Field(description="The 28x28 image the network saw: a PNG, base64-encoded.")


class ModelResponse(BaseModel):
    """The checkpoint being served."""

    checkpoint: str
    architecture: str = Field(description="Layer sizes, e.g. '784-512-512-10'.")
    parameters: int
    test_accuracy: float | None = Field(description="From the checkpoint; null if it was never tested.")
    epoch: int
    classes: list[str]
    config: dict = Field(description="The model section of the checkpoint's config.")
    min_confidence: float = Field(description="Predictions below this probability are marked uncertain.")
    collect: bool = Field(False, description="POST /api/collect/{label} saves drawings (serve --collect DIR).")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong, in `mnist predict`'s words for images.")


class Health(BaseModel):
    status: str = "ok"


page = APIRouter()
api = APIRouter()
IMAGE_ERRORS = {
    413: {"model": ErrorResponse, "description": "The request body is over 10 MiB."},
    422: {"description": "Not an image, no digit found, too many pixels, or no `image` file field."},
}
RunChoice = Annotated[
    str | None, Query(description="A run under the checkpoint folder (an id of GET /api/runs): its best.pt answers.")
]


@page.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> str:
    return resources.files("mnist_cli.serving").joinpath("static/index.html").read_text(encoding="utf-8")


@page.get("/healthz", response_model=Health, tags=["server"])
def healthz() -> Health:
    """200 while the server is up."""
    return Health()


@api.get("/api/model", response_model=ModelResponse, tags=["model"])
def model_info(request: Request, run: RunChoice = None) -> ModelResponse:
    """The checkpoint being served (or the chosen run's): its path, architecture, size and test accuracy."""
    serving = request.app.state.serving
    t = chosen(request, run)
    return ModelResponse(
        checkpoint=str(t.path),
        architecture=t.architecture,
        parameters=t.parameters,
        test_accuracy=t.test_accuracy,
        epoch=t.epoch,
        classes=t.classes,
        config=t.config.model.model_dump(),
        min_confidence=serving.min_confidence,
        collect=serving.collect is not None,
    )


@api.post("/api/collect/{label}", tags=["data"])
async def collect(request: Request, label: str, image: Annotated[UploadFile, File()]) -> dict[str, str]:
    """Save a drawing as DIR/<label>/drawing-N.png (serve --collect DIR): your own labelled digits."""
    serving = request.app.state.serving
    if serving.collect is None or label not in serving.trained.classes:
        raise HTTPException(404, "not collecting" if serving.collect is None else f"no class {label!r}")
    data = await image.read()
    try:
        decode(data)  # only images are kept
        folder = serving.collect / label
        folder.mkdir(parents=True, exist_ok=True)
        path, file = create_new(folder, "drawing", ".png")
        with file:
            file.write(data)
    except ImageError as e:
        raise HTTPException(422, str(e)) from None
    except OSError as e:
        raise HTTPException(500, f"cannot save into {serving.collect}: {e.strerror or e}") from None
    return {"saved": str(path)}


@api.post("/api/predict", response_model=PredictResponse, responses=IMAGE_ERRORS, tags=["model"])
async def predict(
    request: Request,
    image: Annotated[UploadFile, File(description="An image file: a PNG of the canvas, a photo, a scan.")],
    run: RunChoice = None,
) -> PredictResponse:
    """The digit in an image, read and prepared exactly as `mnist predict` does."""
    serving = request.app.state.serving
    options = {"top_k": serving.top_k, "min_confidence": serving.min_confidence}
    data, name = await image.read(), image.filename or "upload"
    try:
        # Off the event loop: loading, decoding and the forward pass would otherwise stall every other request.
        return await anyio.to_thread.run_sync(
            lambda: predict_json(data, name, chosen(request, run), **options), limiter=serving.limiter
        )
    except ImageError as e:
        raise HTTPException(422, str(e)) from None


def chosen(request: Request, run: str | None) -> TrainedModel:
    """The served model, or the best.pt of `run` (the draw page's chooser); 404 for no such run, 422 for a model
    that cannot read images."""
    if run is None:
        return request.app.state.serving.trained
    path = folder(request.app.state.runner, run) / "best.pt"
    if not path.is_file():
        raise HTTPException(404, f"{run} has no best.pt yet (it saves one when its first epoch ends)")
    try:
        return load_image_model(path, path.stat().st_mtime_ns)
    except MnistError as e:  # a run folder may come from someone else
        raise HTTPException(422, str(e)) from None


@lru_cache(maxsize=4)
def load_image_model(path: Path, mtime_ns: int) -> TrainedModel:
    """A run's best.pt, loaded once while it stays the same file (a new run in its folder writes another)."""
    return image_model(path, "serve")[0]


def predict_json(data: bytes, name: str, trained: TrainedModel, **options) -> PredictResponse:
    """predict_bytes's answer as the API's response: predict's JSON entry + probabilities + the 28x28 input."""
    p = predict_bytes(data, name, trained, **options)
    return PredictResponse(**p.as_dict(), probabilities=p.probabilities, input=png_base64(p.input))


def png_base64(pixels: np.ndarray) -> str:
    """uint8 (H, W) -> a grayscale PNG, base64-encoded."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
