"""Turn YAML, dicts or models into a validated spec, or one :class:`SpecError` naming every problem.

Files and text are read within fixed bounds (:mod:`kdoctor.specs.reading`: size, aliases, depth,
duplicate keys, UTF-8), and errors echo at most a few dozen characters of what they got.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from kdoctor.errors import FieldProblem, SpecError
from kdoctor.specs.apphttp import AppHttpHealthy
from kdoctor.specs.common import API_VERSION
from kdoctor.specs.diskio import DiskIO
from kdoctor.specs.netdns import Netdns
from kdoctor.specs.netreach import NetReach
from kdoctor.specs.reading import check_data, load_yaml, read_file, shown

Spec = Annotated[NetReach | AppHttpHealthy | Netdns | DiskIO, Field(discriminator="kind")]
"""Any task document, discriminated on ``kind``."""

SpecModel = NetReach | AppHttpHealthy | Netdns | DiskIO
KINDS: dict[str, type[BaseModel]] = {
    "NetReach": NetReach,
    "AppHttpHealthy": AppHttpHealthy,
    "Netdns": Netdns,
    "DiskIO": DiskIO,
}

_ADAPTER: TypeAdapter[SpecModel] = TypeAdapter(Spec)


def load_spec(source: SpecModel | dict[str, Any] | str | Path) -> SpecModel:
    """Validate a spec given as a model, a dict, or the path of a YAML file.

    Raises:
        SpecError: listing every wrong field with what is allowed; nothing else is raised for
            bad input (an unreadable file is a SpecError too).
    """
    if isinstance(source, NetReach | AppHttpHealthy | Netdns | DiskIO):
        return source
    if isinstance(source, dict):
        return validate(source)
    path = Path(source)
    return load_text(read_file(path), str(path))


def load_text(text: str, origin: str = "") -> SpecModel:
    """Validate a spec given as YAML (or JSON) text."""
    return validate(load_yaml(text, origin), origin)


def validate(data: Any, origin: str = "") -> SpecModel:
    """Validate already-parsed data (a dict)."""
    if not isinstance(data, dict):
        raise SpecError(
            [FieldProblem("", "a spec must be a mapping with apiVersion, kind, metadata and spec")], origin
        )
    check_data(data, origin)
    problems = _envelope_problems(data)
    if problems:
        raise SpecError(problems, origin)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        model = KINDS[data["kind"]]
        raise SpecError([_problem(err, model) for err in exc.errors()], origin) from None


def _envelope_problems(data: dict[str, Any]) -> list[FieldProblem]:
    problems = []
    if data.get("apiVersion") != API_VERSION:
        problems.append(FieldProblem("apiVersion", f"must be {API_VERSION!r}; got {shown(data.get('apiVersion'))}"))
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        allowed = ", ".join(KINDS)
        hint = difflib.get_close_matches(str(kind)[:64], list(KINDS), n=1)
        maybe = f" (did you mean {hint[0]}?)" if hint else ""
        problems.append(FieldProblem("kind", f"unknown kind {shown(kind)}{maybe}; allowed: {allowed}"))
    return problems


def _problem(err: Any, model: type[BaseModel]) -> FieldProblem:
    loc = [str(part)[:64] for part in err["loc"]]
    if loc and loc[0] in KINDS:  # the discriminator tag pydantic puts first
        loc = loc[1:]
    path = ".".join(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, loc[:-1])
        hint = difflib.get_close_matches(loc[-1][:64], allowed, n=1)
        maybe = f" (did you mean {hint[0]}?)" if hint else ""
        return FieldProblem(path, f"unknown field{maybe}; allowed: {', '.join(allowed)}")
    if kind == "missing":
        return FieldProblem(path, "required field is missing")
    message = str(err["msg"])
    message = message.removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    # Our own validators already quote the bad value; pydantic's built-in checks do not.
    if "input" in err and kind not in ("model_type", "dict_type", "value_error") and not isinstance(
        err["input"], dict
    ):
        message += f" (got {shown(err['input'])})"
    return FieldProblem(path, message)


def _allowed_fields(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The field names (as written in YAML) allowed at ``loc`` inside ``model``."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        current = _submodel(current, part)
    if current is None:
        return []
    return [info.alias or name for name, info in current.model_fields.items()]


def _submodel(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return _model_in(info.annotation)
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def spec_json(spec: SpecModel) -> dict[str, Any]:
    """The normalized spec (defaults filled in) as JSON-ready camelCase data."""
    return spec.model_dump(mode="json", by_alias=True)
