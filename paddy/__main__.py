"""`python -m paddy …`, the same as the `paddy` command: for launchers that start modules, and machines without the
script."""
from .cli import app

if __name__ == '__main__':  # a spawned worker imports this module again, and must not run the command twice
    app(prog_name='paddy')
