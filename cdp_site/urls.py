from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("transactions.web.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("transactions.api.urls")),
]
