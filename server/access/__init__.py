"""Who may use the admin API: roles, org-scoped admin tokens, user accounts and sessions, and the one authorization check."""
