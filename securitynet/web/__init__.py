"""A read-only web view of the catalogue (``securitynet serve``): Starlette + Jinja2 over
:mod:`securitynet.catalogue`, like the CLI a thin skin. Needs the ``web`` extra."""
