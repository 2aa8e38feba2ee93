"""``python -m robrank`` is the same as the ``robrank`` command."""
from .cli import main

main()
