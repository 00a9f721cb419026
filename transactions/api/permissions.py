from rest_framework.permissions import BasePermission


class CanIngestTransactions(BasePermission):
    message = "You do not have permission to ingest transactions."

    def has_permission(self, request, view):
        return request.user.has_perm("transactions.add_transaction")


class CanViewTransactions(BasePermission):
    message = "You do not have permission to view transaction reports."

    def has_permission(self, request, view):
        return request.user.has_perm("transactions.view_transaction")
