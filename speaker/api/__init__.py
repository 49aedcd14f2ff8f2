"""The status/admin API: JSON lines over a unix socket (mode 0660)."""
