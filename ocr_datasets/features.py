"""The columns of a format, declared as ``datasets`` declares them (``Value``, ``Image``, ``List``,
a dict for a struct) and written as ``datasets`` writes them, without importing ``datasets``.

An export writes its parquet with pyarrow alone, and importing ``datasets`` for its ``Features``
would cost every export 0.7 s (0.57 s importing it, pandas included, and 0.13 s tearing it down at
exit): a third of re-exporting 10,000 cached lines. The few feature types the formats use are
declared here with what ``datasets`` makes of them: the Arrow type, the serialised form (the
``huggingface`` schema metadata a parquet file carries, which ``load_dataset`` reads its features
from) and the per-column parquet options. ``Features.to_datasets`` gives ``datasets``' own object
where ``datasets`` is at work anyway, and the tests check every format's schema, metadata and
options against ``datasets``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class Value:
    """A scalar column: ``dtype`` is a pyarrow type alias (``string``, ``float64``, ``int64``, ``bool``)."""

    dtype: str

    def arrow_type(self) -> pa.DataType:
        return pa.type_for_alias(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "_type": "Value"}


@dataclass(frozen=True)
class Image:
    """An image cell: its encoded ``bytes`` and a file name (``path``), as ``datasets.Image`` stores it."""

    def arrow_type(self) -> pa.DataType:
        return pa.struct({"bytes": pa.binary(), "path": pa.string()})

    def to_dict(self) -> dict[str, Any]:
        return {"_type": "Image"}


@dataclass(frozen=True)
class List:
    """A list of ``feature`` (a feature, or a dict of them for a struct)."""

    feature: Feature

    def arrow_type(self) -> pa.DataType:
        return pa.list_(_arrow_type(self.feature))

    def to_dict(self) -> dict[str, Any]:
        return {"feature": _to_dict(self.feature), "_type": "List"}


Feature = Value | Image | List | dict[str, Any]


class Features(dict[str, Feature]):
    """Column name -> feature, in column order."""

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema, with the ``huggingface`` metadata ``datasets`` reads the features from."""
        metadata = {"huggingface": json.dumps({"info": {"features": self.to_dict()}})}
        return pa.schema({name: _arrow_type(feature) for name, feature in self.items()}, metadata=metadata)

    def to_dict(self) -> dict[str, Any]:
        """The serialised form (``datasets.Features.to_dict``)."""
        return {name: _to_dict(feature) for name, feature in self.items()}

    def to_datasets(self):
        """The same features as ``datasets.Features`` (imports ``datasets``)."""
        import datasets

        return datasets.Features.from_dict(self.to_dict())

    @cached_property
    def parquet_column_options(self) -> dict[str, Any]:
        """``pq.ParquetWriter``'s per-column options, as ``datasets`` writes parquet: the leaves of
        an image column stored plain and uncompressed (image bytes are compressed already), every
        other leaf dictionary-encoded and snappy-compressed. Parquet names a leaf by its path
        (``messages.list.element.role``)."""
        compression: dict[str, str] = {}
        use_dictionary: list[str] = []
        column_encoding: dict[str, str] = {}
        for name, feature in self.items():
            embedded = _holds_image(feature)
            for leaf in _leaf_paths(name, _arrow_type(feature)):
                compression[leaf] = "none" if embedded else "snappy"
                if embedded:
                    column_encoding[leaf] = "PLAIN"
                else:
                    use_dictionary.append(leaf)
        return {"compression": compression, "use_dictionary": use_dictionary, "column_encoding": column_encoding}


def _arrow_type(feature: Feature) -> pa.DataType:
    if isinstance(feature, dict):
        return pa.struct({name: _arrow_type(inner) for name, inner in feature.items()})
    return feature.arrow_type()


def _to_dict(feature: Feature) -> dict[str, Any]:
    if isinstance(feature, dict):
        return {name: _to_dict(inner) for name, inner in feature.items()}
    return feature.to_dict()


def _holds_image(feature: Feature) -> bool:
    if isinstance(feature, dict):
        return any(map(_holds_image, feature.values()))
    if isinstance(feature, List):
        return _holds_image(feature.feature)
    return isinstance(feature, Image)


def _leaf_paths(path: str, arrow_type: pa.DataType) -> list[str]:
    if pa.types.is_struct(arrow_type):
        return [leaf for field in arrow_type for leaf in _leaf_paths(f"{path}.{field.name}", field.type)]
    if pa.types.is_list(arrow_type):
        return _leaf_paths(f"{path}.list.element", arrow_type.value_type)
    return [path]
