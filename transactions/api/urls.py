from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import imports, views

urlpatterns = [
    # The contract names these without a trailing slash; accept one as well.
    re_path(r"^ingest-data/?$", views.IngestTransactionsView.as_view(), name="ingest-data"),
    re_path(r"^query-transaction-range/?$", views.TransactionRangeView.as_view(), name="query-transaction-range"),
    re_path(r"^top-customers/?$", views.TopCustomersView.as_view(), name="top-customers"),
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
    path("imports/", imports.ImportListView.as_view(), name="import-list"),
    path("imports/<int:job_id>/", imports.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<int:job_id>/rejected.csv", imports.ImportRejectedRowsView.as_view(), name="import-rejected"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]
