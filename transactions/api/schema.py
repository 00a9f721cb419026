"""OpenAPI adjustments drf-spectacular can't infer."""

# The contract names these endpoints without a trailing slash; the URL patterns accept both
# spellings, which drf-spectacular renders with the slash.
CONTRACT_PATHS = ("/api/ingest-data", "/api/query-transaction-range", "/api/top-customers")

ERROR_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERRORS = {
    "type": "object",
    "description": (
        'DRF\'s validation errors, `{"field": ["message", ...]}`; for a batch, `{"errors": {"<index>": '
        '{"field": ["message"]}}}`; for a malformed body, `{"detail": "..."}`.'
    ),
    "additionalProperties": True,
}


def _json(description: str, schema_name: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


def use_contract_paths(result, generator, request, public):
    result["paths"] = {
        (path.rstrip("/") if path.rstrip("/") in CONTRACT_PATHS else path): operations
        for path, operations in result["paths"].items()
    }
    return result


def document_error_responses(result, generator, request, public):
    """Add the error answers of shared/API.md ("Authentication and errors") to every operation.

    drf-spectacular documents what a view returns on success; the answers DRF and our exception
    handler give on the way there (401/403, 404 for an unknown id, 413/415 for a body the parsers
    refuse, 429, 503 when the database is down) would otherwise be undocumented, and a client
    generated from the schema would not expect them.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", ERROR_DETAIL)
    schemas.setdefault("ValidationErrors", VALIDATION_ERRORS)
    for path, operations in result["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            authenticated = any(requirement for requirement in operation.get("security", []))
            added = {"503": _json("The database is unreachable; retry after `Retry-After` seconds.", "ErrorDetail")}
            if authenticated:
                added["401"] = _json("No credentials, or invalid ones.", "ErrorDetail")
                added["403"] = _json("The user lacks the permission this endpoint needs.", "ErrorDetail")
                added["429"] = _json("Throttled; retry after `Retry-After` seconds.", "ErrorDetail")
            if "{" in path:
                added["404"] = _json("No such object (or not one of yours).", "ErrorDetail")
            if "requestBody" in operation:
                added["400"] = _json("Invalid request.", "ValidationErrors")
                added["413"] = _json("Body over the size limit.", "ErrorDetail")
                added["415"] = _json("Unsupported content type.", "ErrorDetail")
            for status_code, response in added.items():
                documented = responses.setdefault(status_code, response)
                if "content" not in documented:  # documented by the view with a description only
                    documented["content"] = response["content"]
    return result
