"""The HTTP API's bodies (pydantic): what ``POST /v1/predict`` takes and returns. FastAPI validates requests against
them and publishes them at ``/docs``; checks that need the model (its template columns) are in app.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PredictRequest(BaseModel):
    """Either ``movies`` (objects with the model's template columns, e.g. synopsis and movie_name) or ``texts``
    (raw model inputs, used as they are)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"movies": [{"synopsis": "A retired detective returns for one last case.", "movie_name": "Night Shift"}]},
        {"texts": ["A retired detective returns for one last case. Night Shift"]}]})

    movies: list[dict[str, str | None]] | None = Field(
        None, description="movies by the model's template columns (GET /v1/metadata lists them); null or \"\" for "
                          "a column a movie lacks")
    texts: list[str] | None = Field(None, description="raw model inputs, the template already applied")

    @model_validator(mode="after")
    def one_input(self) -> PredictRequest:
        if (self.movies is None) == (self.texts is None):
            raise ValueError("give exactly one of \"movies\" (objects with the template columns) or \"texts\"")
        return self


class Prediction(BaseModel):
    genres: list[str] = Field(description="the genres the model's decision rule chose")
    probabilities: dict[str, float] = Field(description="every genre's (calibrated) probability")
    cut: bool = Field(description="the text was longer than the model's max_length tokens and was cut as in "
                                  "training")


class PredictResponse(BaseModel):
    model: dict[str, Any] = Field(description="which model answered: its file's sha256, kind and name")
    predictions: list[Prediction] = Field(description="one per input, in input order")


class ErrorBody(BaseModel):
    status: int
    field: str | None = Field(description="where in the request, e.g. movies[2].synopsis; null for the whole body")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_payload(status: int, field: str | None, message: str) -> dict[str, Any]:
    """The API's one error shape (ErrorResponse), for the app's handlers and the body limit below FastAPI alike."""
    return {"error": {"status": status, "field": field, "message": message}}
