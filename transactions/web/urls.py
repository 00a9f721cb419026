from django.urls import path

from . import views

app_name = "web"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("upload/", views.UploadView.as_view(), name="upload"),
    path("imports/<int:job_id>/", views.ImportStatusView.as_view(), name="import-status"),
    path("reports/range/", views.RangeReportView.as_view(), name="range-report"),
    path("reports/range/export.csv", views.RangeReportExportView.as_view(), name="range-report-export"),
    path("reports/top-customers/", views.TopCustomersView.as_view(), name="top-customers"),
    path("reports/top-customers/export.csv", views.TopCustomersExportView.as_view(), name="top-customers-export"),
    path("customers/<int:customer_id>/", views.CustomerView.as_view(), name="customer"),
]
