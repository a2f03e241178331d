"""A Django project with protected views and ``django.views.static.serve``."""
