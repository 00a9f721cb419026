from django.urls import path, re_path

from . import docs, imports, segments, views

urlpatterns = [
    # The contract names these without a trailing slash; accept one as well.
    re_path(r"^ingest-data/?$", views.IngestTransactionsView.as_view(), name="ingest-data"),
    re_path(r"^query-transaction-range/?$", views.TransactionRangeView.as_view(), name="query-transaction-range"),
    re_path(r"^top-customers/?$", views.TopCustomersView.as_view(), name="top-customers"),
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
    path("imports/", imports.ImportListView.as_view(), name="import-list"),
    path("imports/<int:job_id>/", imports.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<int:job_id>/rejected.csv", imports.ImportRejectedRowsView.as_view(), name="import-rejected"),
    path("segments/", segments.SegmentListView.as_view(), name="segment-list"),
    path("segments/<int:segment_id>/", segments.SegmentDetailView.as_view(), name="segment-detail"),
    path("segments/<int:segment_id>/customers/", segments.SegmentCustomersView.as_view(), name="segment-customers"),
    path("schema/", docs.SchemaView.as_view(), name="schema"),
    path("docs/", docs.DocsView.as_view(url_name="schema"), name="swagger-ui"),
    # Anything else under /api/ is answered with a JSON 404, not the dashboard's HTML page (an
    # import id that isn't a number lands here too). Only paths ending in "/" or ".csv" are
    # caught, so that CommonMiddleware still redirects "/api/imports" to "/api/imports/".
    # [\s\S], not ".": a path may hold an encoded newline (%0A). (An inline (?s) flag would do
    # the same, but Django's reverse() refuses any pattern holding one, for every URL.)
    re_path(r"^(?:[\s\S]*/|[\s\S]*\.csv)$", views.api_not_found, name="api-not-found"),
]
