"""Integrations with other tools, each behind an optional extra and imported only when used."""
