from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # The API first: its requests are the most frequent, and each pattern before a match is
    # one more regular expression tried (the dashboard's fourteen came first: 4% of an ingest's
    # Python). No dashboard path starts with "api/", so the order changes no match.
    path("api/", include("transactions.api.urls")),
    path("", include("transactions.web.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
