"""OpenAPI adjustments drf-spectacular can't infer."""

# The contract names these endpoints without a trailing slash; the URL patterns accept both
# spellings, which drf-spectacular renders with the slash.
CONTRACT_PATHS = ("/api/ingest-data", "/api/query-transaction-range", "/api/top-customers")


def use_contract_paths(result, generator, request, public):
    result["paths"] = {
        (path.rstrip("/") if path.rstrip("/") in CONTRACT_PATHS else path): operations
        for path, operations in result["paths"].items()
    }
    return result
