"""The web eCRF and JSON API: FastAPI app, pages, routes, templates, static files (adapters)."""
