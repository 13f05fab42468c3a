"""`rudolph web`: the search page, the image page and the JSON API behind them.

- `app`: the FastAPI application (routes, error pages, security headers) built from settings.
- `api`, `pages`: the JSON routes and the HTML routes.
- `models`: the API's response bodies (and so its OpenAPI schema).
- `errors`: the web layer's errors and the HTTP status of each error a route meets.
- `services`: what the routes talk to (index, table, presigner).
- `presign`: short-lived S3 GET URLs, the browser's only access to the images.
- `auth`: optional HTTP basic auth over everything.
- `server`: uvicorn.
"""
