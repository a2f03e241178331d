"""The example Django project (see ``manage.py`` for how to run it)."""
