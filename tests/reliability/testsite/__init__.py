"""A small Django project served by real gunicorn, uvicorn, uWSGI and Celery processes in the
reliability tests. It reuses the test suite's views and URLs; ``KAMELEOON`` comes from the
environment so that each test points it at its own local Data API server.
"""
