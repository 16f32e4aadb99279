"""What the API returns, as typed models: FastAPI validates them and describes them at /openapi.json."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
