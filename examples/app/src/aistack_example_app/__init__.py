"""Reference FastAPI service that honours the aistack.fleet service contract."""

__version__ = "1.0.0"
