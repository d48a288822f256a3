"""Saved datasets (training sets kept with the features they hold) and models.

Both are registered at run time, not declared in a repo: ``store.create_saved_dataset(...)``
after a historical retrieval, ``store.register_model(...)`` after training. A whole-repo
``apply`` leaves them alone. They close the lineage graph: source → feature view → on-demand
view → feature service → saved dataset → model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pitstop.definitions.base import Described, check_name, check_text, described
from pitstop.definitions.refs import parse_ref, view_of
from pitstop.errors import DefinitionError, RetrievalError


class SavedDatasetFileStorage:
    """Where a saved dataset's rows are: a Parquet file (relative paths: to the repo).

    >>> SavedDatasetFileStorage(path="data/training.parquet").path
    'data/training.parquet'
    """

    def __init__(self, path: str, file_format: object = None) -> None:
        if not isinstance(path, str) or not path:
            raise DefinitionError(
                f"SavedDatasetFileStorage: path must be a file path, got {path!r}"
            )
        self.path = path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SavedDatasetFileStorage) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"SavedDatasetFileStorage(path={self.path!r})"


def _names(values: object, what: str, field: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise DefinitionError(f"{what}: {field} must be a list of strings")
    if not all(isinstance(v, str) and v for v in values):
        raise DefinitionError(f"{what}: {field} must be a list of non-empty strings")
    return tuple(values)


class SavedDataset(Described):
    """A training set: the features it holds (``view:feature``, ``view@v2:feature``), the
    service they came from (if any), its join keys and where its rows are stored. ``recipe``
    (set by ``store.create_saved_dataset``) records how to rebuild it:
    :mod:`pitstop.quality.datasets`.

    >>> SavedDataset(name="churn_train", features=["users:age"], join_keys=["user_id"],
    ...              storage=SavedDatasetFileStorage(path="data/train.parquet")).features
    ('users:age',)
    """

    kind = "saved_dataset"
    features: tuple[str, ...]
    join_keys: tuple[str, ...]
    storage: SavedDatasetFileStorage
    feature_service: str | None
    full_feature_names: bool
    recipe: dict[str, Any] | None

    def __init__(
        self,
        *,
        name: str,
        features: Sequence[str],
        join_keys: Sequence[str],
        storage: SavedDatasetFileStorage,
        full_feature_names: bool = False,
        feature_service: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        recipe: Mapping[str, Any] | None = None,
    ) -> None:
        what = f"SavedDataset {name!r}"
        check_name(name, "SavedDataset")
        refs = _names(features, what, "features")
        for ref in refs:
            try:
                parse_ref(ref)
            except RetrievalError as exc:
                raise DefinitionError(f"{what}: {exc}") from None
        if not isinstance(storage, SavedDatasetFileStorage):
            raise DefinitionError(f"{what}: storage must be a SavedDatasetFileStorage")
        if feature_service is not None:
            check_name(feature_service, f"{what}: feature_service")
        self._set(
            name=name,
            features=refs,
            join_keys=_names(join_keys, what, "join_keys"),
            storage=storage,
            full_feature_names=bool(full_feature_names),
            feature_service=feature_service,
            recipe=None if recipe is None else dict(recipe),
        )
        self._set_described(what, description, tags, owner)

    @property
    def views(self) -> tuple[str, ...]:
        """The views the features come from, in order of first use."""
        return tuple(dict.fromkeys(view_of(ref) for ref in self.features))

    def to_spec(self) -> dict[str, Any]:
        spec = {
            "name": self.name,
            "features": list(self.features),
            "join_keys": list(self.join_keys),
            "storage": {"type": "file", "path": self.storage.path},
            "full_feature_names": self.full_feature_names,
            "feature_service": self.feature_service,
            **self._described_spec(),
        }
        if self.recipe is not None:  # kept out when unset: older specs keep their hash
            spec["recipe"] = self.recipe
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SavedDataset:
        return cls(
            name=spec["name"],
            features=spec["features"],
            join_keys=spec.get("join_keys", []),
            storage=SavedDatasetFileStorage(path=spec["storage"]["path"]),
            full_feature_names=spec.get("full_feature_names", False),
            feature_service=spec.get("feature_service"),
            **described(spec),
            recipe=spec.get("recipe"),
        )


class Model(Described):
    """A model and what it was trained on: the feature service it reads and, optionally, the
    saved datasets it was trained with, and where the model is (``uri``).

    >>> Model(name="churn_xgb", feature_service="churn_model_v1").feature_service
    'churn_model_v1'
    """

    kind = "model"
    feature_service: str
    training_datasets: tuple[str, ...]
    uri: str

    def __init__(
        self,
        *,
        name: str,
        feature_service: str,
        training_datasets: Sequence[str] = (),
        uri: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        what = f"Model {name!r}"
        check_name(name, "Model")
        check_name(feature_service, f"{what}: feature_service")
        self._set(
            name=name,
            feature_service=feature_service,
            training_datasets=_names(training_datasets, what, "training_datasets"),
            uri=check_text(uri, "uri", what),
        )
        self._set_described(what, description, tags, owner)

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "feature_service": self.feature_service,
            "training_datasets": list(self.training_datasets),
            "uri": self.uri,
            **self._described_spec(),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Model:
        return cls(
            name=spec["name"],
            feature_service=spec["feature_service"],
            training_datasets=spec.get("training_datasets", []),
            uri=spec.get("uri", ""),
            **described(spec),
        )
