"""A small shop that shows django-kameleoon at work: pages, a checkout, a JSON endpoint."""
