"""Who is calling: passwords, console sessions, API tokens, CSRF, OIDC, and the FastAPI
dependencies that enforce the role policy of :mod:`surefoot.domain.access`."""
