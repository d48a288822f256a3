"""Churn predictions with features from the online store (tutorial sections 5.1 and 5.2).

``ModelWithFeatureStore`` looks up a customer's latest features and runs the model on them; the
FastAPI app puts it behind ``POST /predict`` and ``GET /health``. Run from ``examples/``::

    uvicorn churn.app:app --port 8000  # CHURN_MODEL, CHURN_FEATURE_REPO override the paths
    curl -X POST localhost:8000/predict -H 'Content-Type: application/json' -d '{"user_id": 1001}'

Answers of ``/predict``: 200 with the prediction; 404 when the online store does not know the
customer; 503 when it knows them but has no usable values (older than the feature view's TTL, or
null) — the features need a fresh pipeline run and materialization, the request was fine;
422 for a malformed request. Other errors are bugs: 500, logged by the server, not echoed back.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from pitstop import FeatureStore

from . import FEATURE_REPO, FEATURE_SERVICE, MODEL


class UnknownUserError(LookupError):
    """The online store has no features for this customer."""


class FeaturesUnavailableError(RuntimeError):
    """The customer is known, but some features have no usable value."""


class ModelWithFeatureStore:
    """A model that fetches its own inputs from the online store.

    >>> server = ModelWithFeatureStore("models/churn_model.pkl", "feature_repo")  # doctest: +SKIP
    >>> server.predict(1001)                                                     # doctest: +SKIP
    {'user_id': 1001, 'prediction': 0, 'probability': [0.93, 0.07], 'features': {...}}
    """

    def __init__(self, model_path: str | Path, feature_repo_path: str | Path) -> None:
        self.model_path = Path(model_path)
        self.model = joblib.load(model_path)
        self.store = FeatureStore(repo_path=feature_repo_path)
        self.feature_service = self.store.get_feature_service(FEATURE_SERVICE)
        # the model remembers the columns it was fitted on, in order
        self.feature_names: list[str] = list(self.model.feature_names_in_)

    def online_features(self, user_ids: list[int]) -> Any:
        """The service's latest feature values for ``user_ids``, in one online-store read."""
        return self.store.get_online_features(
            features=self.feature_service,
            entity_rows=[{"user_id": user_id} for user_id in user_ids],
        )

    def predict(self, user_id: int) -> dict[str, Any]:
        """Look up the customer's features, check them, and predict."""
        response = self.online_features([user_id])
        values = response.to_dict()
        status = {name: response.statuses[name][0] for name in self.feature_names}
        if "NOT_FOUND" in status.values():
            raise UnknownUserError(
                f"user {user_id} has no features in the online store (an unknown customer, "
                "or one added since the last materialization)"
            )
        unusable = {name: s for name, s in status.items() if s != "PRESENT"}
        if unusable:
            detail = ", ".join(f"{name} is {s}" for name, s in unusable.items())
            raise FeaturesUnavailableError(
                f"features of user {user_id} cannot be used ({detail}); run the feature "
                "pipeline and materialize to refresh the online store"
            )
        features = {name: float(values[name][0]) for name in self.feature_names}
        probability = self.model.predict_proba(pd.DataFrame([features]))[0]
        return {
            "user_id": user_id,
            "prediction": int(self.model.classes_[probability.argmax()]),
            "probability": [float(p) for p in probability],
            "features": features,
        }

    def close(self) -> None:
        self.store.close()


class PredictionRequest(BaseModel):
    user_id: int = Field(description="Customer ID", examples=[1001])


class PredictionResponse(BaseModel):
    user_id: int
    prediction: int = Field(description="1: likely to churn in the next 30 days")
    probability: list[float] = Field(description="[P(stays), P(churns)]")
    features: dict[str, float] = Field(description="The model's inputs, from the online store")


def create_app(model_path: str | Path, feature_repo_path: str | Path) -> FastAPI:
    """The prediction service; the model and the store are opened when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.server = ModelWithFeatureStore(model_path, feature_repo_path)
        yield
        app.state.server.close()

    app = FastAPI(title="Churn prediction", lifespan=lifespan)

    @app.post(
        "/predict",
        responses={
            404: {"description": "Unknown customer"},
            503: {"description": "The customer's features are stale or missing"},
        },
    )
    def predict(body: PredictionRequest, request: Request) -> PredictionResponse:
        # A plain `def`: FastAPI runs it in a worker thread, so the feature lookup never
        # blocks the event loop
        server: ModelWithFeatureStore = request.app.state.server
        try:
            return PredictionResponse(**server.predict(body.user_id))
        except UnknownUserError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except FeaturesUnavailableError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc

    @app.get("/health")
    def health(request: Request) -> dict[str, Any]:
        server: ModelWithFeatureStore = request.app.state.server
        return {
            "status": "healthy",
            "model": server.model_path.name,
            "feature_service": server.feature_service.name,
            "features": server.feature_names,
        }

    return app


# For `uvicorn churn.app:app`; nothing is loaded until the server starts
app = create_app(
    os.environ.get("CHURN_MODEL", str(MODEL)),
    os.environ.get("CHURN_FEATURE_REPO", str(FEATURE_REPO)),
)
