"""The web view: static pages served by the query service at ``/`` (see ``assets``).

The pages read only the REST API, with the caller's own key or login token, so what a page shows is
exactly what the API lets that caller read."""
