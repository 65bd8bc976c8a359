"""`python -m paddy …`, the same as the `paddy` command: for launchers that start modules, and machines without the script."""
from .cli import app

app(prog_name='paddy')
