"""A Django REST framework project for tests/test_drf.py, served by gunicorn; pat-middleware's
settings come from ``$PAT_TEST_SETTINGS``."""
