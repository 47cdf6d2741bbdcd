"""The serving service: Flask app factory, hot reload, real-time fold-in, gunicorn runner."""
