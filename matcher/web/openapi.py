"""The OpenAPI 3.1 document at ``/openapi.json``, generated from the routes and their pydantic models.

Each view declares, with :func:`operation`, who may call it (a permission of :mod:`matcher.roles`,
or ``PUBLIC``), its query, body and response models. The same models validate the requests (and,
with ``VALIDATE_RESPONSES``, the responses), and :func:`build` turns them into the document, so the
contract cannot drift from the code. A view without a declaration is refused to everyone
(:mod:`matcher.web.access` fails closed) and a test checks that every route has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from matcher.roles import ROLES
from matcher.web.schemas import Problem

__all__ = ["PUBLIC", "Operation", "bp", "build", "operation"]

PUBLIC = None
PROBLEM = "application/problem+json"
_CONVERTER = re.compile(r"<(?:(\w+)(?:\((.*?)\))?:)?(\w+)>")

ModelSpec = type[BaseModel] | Callable[[str | None], type[BaseModel]] | None


@dataclass(frozen=True)
class Operation:
    """What the document says of one view; ``responses`` maps a status to a model, a
    ``(media type, JSON schema)`` pair, or None (no body)."""

    permission: str | None
    summary: str
    body: ModelSpec = None
    query: type[BaseModel] | None = None
    responses: dict[int, Any] = field(default_factory=dict)
    description: str = ""
    tag: str = "matching"


def operation(
    permission: str | None,
    summary: str,
    *,
    body: ModelSpec = None,
    query: type[BaseModel] | None = None,
    responses: dict[int, Any] | None = None,
    description: str = "",
    tag: str = "matching",
) -> Callable:
    """Declare a view's access rule and contract (put it below the route decorator)."""
    if permission is not None and not any(permission in p for p in ROLES.values()):
        raise ValueError(f"no role has the permission {permission!r}")

    def decorate(view: Callable) -> Callable:
        view.operation = Operation(permission, summary, body, query, responses or {}, description, tag)
        return view

    return decorate


def roles_with(permission: str) -> list[str]:
    return [role for role, permissions in ROLES.items() if permission in permissions]


# --------------------------------------------------------------------------- the document


def _expand(rule: str) -> list[tuple[str, str | None, list[str]]]:
    """An URL rule as OpenAPI paths: ``(path, kind or None, path parameter names)``; ``any()`` is expanded."""
    kinds: list[str | None] = [None]
    match = next((m for m in _CONVERTER.finditer(rule) if m.group(1) == "any"), None)
    if match:
        kinds = [k.strip() for k in match.group(2).split(",")]
    paths = []
    for kind in kinds:
        params: list[str] = []

        def render(m: re.Match, kind: str | None = kind, params: list[str] = params) -> str:
            if m.group(1) == "any":
                return kind or ""
            params.append(m.group(3))
            return "{" + m.group(3) + "}"

        paths.append((_CONVERTER.sub(render, rule), kind, params))
    return paths


def _resolve(spec: ModelSpec, kind: str | None) -> type[BaseModel] | None:
    if spec is None or (isinstance(spec, type) and issubclass(spec, BaseModel)):
        return spec
    return spec(kind)


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without ``null`` (absent means null) or titles."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    options = schema.pop("anyOf", None)
    if options:
        kept = [o for o in options if o.get("type") != "null"]
        schema = {**(kept[0] if len(kept) == 1 else {"anyOf": kept}), **schema}
    return schema


def _parameters(query: type[BaseModel] | None, path_params: list[str]) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[^\s/?#%\\]+$"},
        }
        for name in path_params
    ]
    if query is not None:
        schema = query.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            param = {"name": name, "in": "query", "required": name in required, "schema": _plain(prop)}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``."""
    entries = []  # (path, method, operation, kind, path params, endpoint)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        op: Operation | None = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is None:
            continue  # refused to everyone; the route test reports it
        for path, kind, params in _expand(rule.rule):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                entries.append((path, method.lower(), op, kind, params, rule.endpoint))

    wanted: list[tuple[type[BaseModel], str]] = [(Problem, "serialization")]
    for _, _, op, kind, _, _ in entries:
        body = _resolve(op.body, kind)
        if body is not None:
            wanted.append((body, "validation"))
        for response in op.responses.values():
            if not isinstance(response, tuple):
                model = _resolve(response, kind)
                if model is not None:
                    wanted.append((model, "serialization"))
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}")

    def content(model: type[BaseModel], mode: str, media: str = "application/json") -> dict[str, Any]:
        return {media: {"schema": refs[(model, mode)]}}

    problem = {
        "description": "A problem (RFC 9457); `detail` names the field.",
        "content": content(Problem, "serialization", PROBLEM),
    }
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op, kind, path_params, endpoint in entries:
        spec: dict[str, Any] = {
            "operationId": f"{endpoint.replace('.', '_')}{'_' + kind if kind else ''}_{method}",
            "summary": op.summary.format(kind=kind or ""),
            "tags": [op.tag],
        }
        description = op.description.format(kind=kind or "")
        if op.permission is None:
            spec["security"] = []
        else:
            roles = roles_with(op.permission)
            spec["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
            spec["x-permission"] = op.permission
            spec["x-roles"] = roles
            description = (description + "\n\n" if description else "") + f"Roles: {', '.join(roles)}."
        if description:
            spec["description"] = description
        parameters = _parameters(op.query, path_params)
        if parameters:
            spec["parameters"] = parameters
        body = _resolve(op.body, kind)
        if body is not None:
            spec["requestBody"] = {"required": True, "content": content(body, "validation")}
        responses: dict[str, Any] = {}
        for status, response in sorted(op.responses.items()):
            if response is None:
                responses[str(status)] = {"description": "No content."}
            elif isinstance(response, tuple):
                media, schema = response
                responses[str(status)] = {"description": "OK.", "content": {media: {"schema": schema}}}
            else:
                model = _resolve(response, kind)
                responses[str(status)] = {
                    "description": (model.__doc__ or model.__name__).strip().splitlines()[0],
                    "content": content(model, "serialization"),
                }
        responses["default"] = problem
        spec["responses"] = responses
        paths.setdefault(path, {})[method] = spec

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "matcher",
            "version": _version(),
            "description": (
                "Match the needs of social-work organisations to experts, resources and exemplary projects. "
                "Send `Authorization: Bearer <key>`; every error is application/problem+json."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`matcher keys create`).",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "matcher_session",
                    "description": "The page's session (POST /session); writes also need the X-CSRF-Token header.",
                },
            },
        },
    }


def _version() -> str:
    try:
        return metadata.version("matcher")
    except metadata.PackageNotFoundError:
        return "0"


bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
@operation(PUBLIC, "This document", responses={200: ("application/json", {"type": "object"})}, tag="service")
def document() -> ResponseReturnValue:
    """The OpenAPI document (built once per process)."""
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = build(current_app)
    return jsonify(spec)
