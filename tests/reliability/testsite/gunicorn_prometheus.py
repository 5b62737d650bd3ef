"""gunicorn's configuration in the README's Prometheus recipe: its two hooks."""

from django_kameleoon.contrib.prometheus import child_exit, worker_exit  # noqa: F401
