"""Signals of the test site, for the GOALS mapping tests."""

from __future__ import annotations

from django.dispatch import Signal

order_paid = Signal()
newsletter_signup = Signal()
not_a_signal = 42
