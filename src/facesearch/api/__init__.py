"""HTTP API: FastAPI app, routes, error envelope, API keys, URL fetching and request limits."""
