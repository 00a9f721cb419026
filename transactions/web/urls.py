from django.urls import path

from . import segments, views

app_name = "web"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("upload/", views.UploadView.as_view(), name="upload"),
    path("imports/<int:job_id>/", views.ImportStatusView.as_view(), name="import-status"),
    path(
        "imports/<int:job_id>/rejected-rows-to-fix.csv",
        views.ImportRejectedRecordsView.as_view(),
        name="import-rejected-records",
    ),
    path("reports/range/", views.RangeReportView.as_view(), name="range-report"),
    path("reports/range/export.csv", views.RangeReportExportView.as_view(), name="range-report-export"),
    path("reports/top-customers/", views.TopCustomersView.as_view(), name="top-customers"),
    path("reports/top-customers/export.csv", views.TopCustomersExportView.as_view(), name="top-customers-export"),
    path("segments/", segments.SegmentListView.as_view(), name="segments"),
    path("segments/new/", segments.SegmentCreateView.as_view(), name="segment-create"),
    path("segments/<int:segment_id>/", segments.SegmentView.as_view(), name="segment"),
    path("segments/<int:segment_id>/export.csv", segments.SegmentExportView.as_view(), name="segment-export"),
    path("customers/<int:customer_id>/", views.CustomerView.as_view(), name="customer"),
]
