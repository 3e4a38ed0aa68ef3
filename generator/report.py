"""report.json as types: frozen dataclasses whose field names are its keys (a contract).

The report is built once (site/payload.build_report) and never changed after: every record is
frozen and every list a tuple. `to_json` gives the plain JSON data, `from_json` reads it back
(a site's report.json), and `json_schema` derives report.json's JSON Schema from these
annotations, so the schema cannot drift from the code (`dinoclust schema` prints it; the wheel
ships it as generator/report.schema.json). A field marked `absent()` is left out of the JSON when
it is None (the sampled report's extra keys); any other None is written as null.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Union

from generator.errors import GeneratorError

SCHEMA_FILE = Path(__file__).resolve().parent / "report.schema.json"
_ABSENT = "absent_when_none"


def absent() -> Any:
    """A field that report.json leaves out, rather than writing null, when it is None."""
    return field(default=None, metadata={_ABSENT: True})


@dataclass(frozen=True, slots=True)
class I18n:
    """A UI string by its key and arguments, so that the page can show it in any language."""

    key: str
    args: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Generator:
    """The tool that wrote the report."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Preprocess:
    """How images become the model's input: resized and centre-cropped to `size`, normalised."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str


@dataclass(frozen=True, slots=True)
class Model:
    """The model that made the features, and how it ran."""

    name: str
    weights: str
    weights_i18n: I18n | None
    random_weights: bool
    precision: str
    backend: str
    feature_dim: int
    preprocess: Preprocess


@dataclass(frozen=True, slots=True)
class Image:
    """A used image: its path (relative to its input), its thumbnail and preview in the site."""

    path: str
    thumb: str
    thumb_width: int
    thumb_height: int
    width: int
    height: int
    preview: str | None
    preview_width: int | None
    preview_height: int | None


@dataclass(frozen=True, slots=True)
class Pca:
    """The PCA before clustering: how many components, and how much variance each explains."""

    n_components: int
    explained_variance_ratio: tuple[float, ...]
    cumulative_explained_variance_ratio: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Clustering:
    """K-means at one k. `label_table` only with known labels; `sizes_all` only in a sampled
    report, where the other lists are the sample's and `sizes_all` counts every row."""

    labels: tuple[int, ...]
    centers: tuple[tuple[float, float, float], ...]
    sizes: tuple[int, ...]
    inertia: float
    distances: tuple[float, ...]
    metrics: Mapping[str, float | None]
    flows_to_next: tuple[tuple[int, int, int], ...]
    label_table: tuple[tuple[int, ...], ...] | None = absent()
    sizes_all: tuple[int, ...] | None = absent()


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that could not be used, and why."""

    path: str
    reason: str
    reason_i18n: I18n


@dataclass(frozen=True, slots=True)
class Alias:
    """A further path to an image already included (the same bytes)."""

    path: str
    same_as: str


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Groups of image indices: byte-identical, and nearly identical above `near_threshold`."""

    exact: tuple[tuple[int, ...], ...]
    near: tuple[tuple[int, ...], ...]
    near_threshold: float


@dataclass(frozen=True, slots=True)
class KMeans:
    """K-means's restarts and the k it ran for."""

    n_init: int
    k_values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Provenance:
    """How the numbers were made, enough to reproduce them (no paths, no machine names)."""

    model: str
    weights: str
    weights_id: str
    precision: str
    backend: str
    preprocess: Preprocess
    seed: int
    feature_dim: int
    pca_components: int
    kmeans: KMeans
    silhouette_sample: int
    near_duplicate_cosine: float
    labels: str | None
    packages: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class Query:
    """`build --query`: the files of "Find where a photo belongs", loaded on its first use."""

    model: str  # query/model.js: the ONNX model, base64
    index: str  # query/index.js: the vectors, PCA and centres a query is compared with
    runtime: tuple[str, ...]  # onnxruntime-web's script, WASM and glue
    precision: str  # the ONNX model's weights: fp16 (int8 and fp32 were measured)
    bytes: int  # of all the query files together


@dataclass(frozen=True, slots=True)
class Report:
    """report.json. `points` are each image's PC1–PC3; `clusterings` is keyed by str(k). The
    three fields after `provenance` only in a sampled report (a store above a million rows);
    `query` only in a site built with --query."""

    schema_version: int
    generator: Generator
    title: str
    title_i18n: I18n | None
    model: Model
    seed: int
    images: tuple[Image, ...]
    points: tuple[tuple[float, float, float], ...]
    display_sample: tuple[int, ...]
    pca: Pca
    k_values: tuple[int, ...]
    clusterings: Mapping[str, Clustering]
    suggested_k: int | None
    suggested_k_rule: str
    distinct_points: int
    notes: tuple[str, ...]
    notes_i18n: tuple[I18n, ...]
    skipped: tuple[Skipped, ...]
    aliases: tuple[Alias, ...]
    labels: tuple[str, ...] | None
    label_names: tuple[str, ...]
    duplicates: Duplicates
    neighbours: tuple[tuple[int, ...], ...]
    neighbour_similarity: tuple[tuple[float, ...], ...]
    provenance: Provenance
    sampled: bool | None = absent()
    rows: int | None = absent()
    skipped_rows: int | None = absent()
    query: Query | None = absent()

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data (dicts and lists), as report.json holds it."""
        return json.loads(json.dumps(self, default=json_default))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """A report.json's data as a Report (a KeyError or TypeError if it is not one)."""
        return _reader(Report)(data)

    def clustering(self, k: int | str) -> Clustering:
        return self.clusterings[str(k)]


def read_report(path: Path) -> Report:
    """A site's report.json, or an Error naming the file and what to do."""
    try:
        return Report.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GeneratorError(
            f"{path} is not a report.json this version of dinoclust can read ({exc!r}). "
            "Build the site again with this version."
        ) from exc


# --- reading and writing, by the annotations -----------------------------------------------

_LEAVES = (str, int, float, bool, type(None), Any)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parts(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """(origin, arguments) of a hint, with `X | None` as (Union, (X, NoneType))."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType:
        origin = Union
    return origin, typing.get_args(hint)


def json_default(value: Any) -> Any:
    """json.dumps's `default` for a Report, its one JSON writer: each record as a dict of its
    fields, one level at a time (tuples are written as arrays as they are)."""
    write = _SHALLOW.get(type(value))  # a dict lookup first: called once per image
    if write is None:
        if isinstance(value, Mapping):
            write = dict
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            write = _shallow(type(value))
        else:
            raise TypeError(f"{type(value).__name__} is not part of a report")
        _SHALLOW[type(value)] = write
    return write(value)


_SHALLOW: dict[type, Callable[[Any], Any]] = {}


def _shallow(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A record's fields as a dict, values as they are; `absent()` ones left out when None."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    absent = {f.name for f in dataclasses.fields(cls) if f.metadata.get(_ABSENT)}
    values = operator.attrgetter(*names)
    if not absent:
        return lambda value: dict(zip(names, values(value), strict=True))

    def record(value: Any) -> dict[str, Any]:
        pairs = zip(names, values(value), strict=True)
        return {k: v for k, v in pairs if v is not None or k not in absent}

    return record


def json_fields(record: Any, names: Iterable[str]) -> dict[str, Any]:
    """Some of a record's fields as JSON data; an `absent()` one that is None is left out."""
    wanted = set(names)
    kept = {name: value for name, value in json_default(record).items() if name in wanted}
    return json.loads(json.dumps(kept, default=json_default))


@cache
def _reader(hint: Any) -> Callable[[Any], Any]:
    origin, args = _parts(hint)
    if dataclasses.is_dataclass(hint):
        fields = [(f.name, _reader(_hints(hint)[f.name])) for f in dataclasses.fields(hint)]

        def record(data: Mapping[str, Any]) -> Any:
            return hint(**{name: read(data[name]) for name, read in fields if name in data})

        return record
    if origin is Union:
        inner = _reader(next(a for a in args if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        if all(a in _LEAVES or a is Ellipsis for a in args):
            return tuple
        each = _reader(args[0])
        return lambda value: tuple(each(v) for v in value)
    if origin is Mapping:
        each = _reader(args[1])
        return lambda value: types.MappingProxyType({k: each(v) for k, v in value.items()})
    return lambda value: value


# --- the JSON Schema ------------------------------------------------------------------------

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def json_schema() -> dict[str, Any]:
    """report.json's JSON Schema (draft 2020-12), derived from the dataclasses above: every key
    required but the `absent()` ones, no other key allowed."""
    defs: dict[str, Any] = {}
    _schema(Report, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dinoclust report.json",
        **defs.pop("Report"),
        "$defs": defs,
    }


def schema_text() -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin, args = _parts(hint)
    if dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # taken before its fields are: a record may hold its own kind
            hints = _hints(hint)
            fields = dataclasses.fields(hint)
            defs[name] = {
                "type": "object",
                "description": " ".join((hint.__doc__ or name).split()),
                "properties": {f.name: _schema(_present(hints[f.name], f), defs) for f in fields},
                "required": [f.name for f in fields if not f.metadata.get(_ABSENT)],
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    if origin is Union:
        return {"anyOf": [_schema(a, defs) for a in args]}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema(args[0], defs)}
        return {
            "type": "array",
            "prefixItems": [_schema(a, defs) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is Mapping:
        return {"type": "object", "additionalProperties": _schema(args[1], defs)}
    if hint is Any:
        return {}
    return {"type": _SCALARS[hint]}


def _present(hint: Any, f: dataclasses.Field[Any]) -> Any:
    """An `absent()` field's type when it is there: `X | None` without the None."""
    if not f.metadata.get(_ABSENT):
        return hint
    return next(a for a in typing.get_args(hint) if a is not type(None))  # as _reader reads it
