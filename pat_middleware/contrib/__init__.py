"""Framework integrations: Flask (``contrib.flask``) and Django (``contrib.django``)."""
