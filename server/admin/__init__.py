"""The admin API under `/admin/v1`, guarded by `PATCHBAY_ADMIN_TOKEN`."""
